//go:build node

package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/test/harness"
)

// forbidden matches what client-go and the API server say when RBAC refuses a request.
var forbidden = regexp.MustCompile(`(?i)forbidden`)

// podLogs streams the whole log of every manager pod into a file of its own while the pod runs, so
// that a pod deleted by a test (leader handover, upgrade) is checked too.
type podLogs struct {
	dir string

	mu    sync.Mutex
	files map[string]string // pod UID → log file
	wg    sync.WaitGroup
}

func newPodLogs(dir string) *podLogs {
	_ = os.RemoveAll(dir)
	_ = os.MkdirAll(dir, 0o755)
	return &podLogs{dir: dir, files: map[string]string{}}
}

// follow streams the logs of the pods matching selector in ns until ctx ends.
func (p *podLogs) follow(ctx context.Context, ns, selector string) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			pods, err := clients.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
			if err == nil {
				for i := range pods.Items {
					p.start(ctx, &pods.Items[i])
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// start begins streaming pod's log once its manager container has started, once per pod.
func (p *podLogs) start(ctx context.Context, pod *corev1.Pod) {
	running := false
	for _, cs := range pod.Status.ContainerStatuses {
		running = running || cs.State.Running != nil || cs.State.Terminated != nil
	}
	if !running {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	uid := string(pod.UID)
	if _, ok := p.files[uid]; ok {
		return
	}
	path := filepath.Join(p.dir, pod.Namespace+"_"+pod.Name+".log")
	p.files[uid] = path
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f, err := os.Create(path)
		if err != nil {
			return
		}
		defer f.Close()
		// The stream ends when the container does; a pod deleted by a test ends it too.
		rc, err := clients.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Follow: true}).Stream(ctx)
		if err != nil {
			fmt.Fprintf(f, "node-test: log stream: %v\n", err)
			return
		}
		defer rc.Close()
		_, _ = io.Copy(f, rc)
	}()
}

// check waits for the streams to end and returns what is wrong in any of the logs.
func (p *podLogs) check(s *harness.Sensitive) error {
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.files) == 0 {
		return errors.New("no manager pod log was read: the check would prove nothing")
	}
	var problems []string
	for _, path := range p.files {
		b, err := os.ReadFile(path)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		text := string(b)
		for _, line := range strings.Split(text, "\n") {
			if forbidden.MatchString(line) {
				problems = append(problems, fmt.Sprintf("%s: RBAC refused a request: %.300s", filepath.Base(path), line))
			}
		}
		for _, l := range s.Scan(filepath.Base(path), text) {
			problems = append(problems, l.String())
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// reread replaces the files of the running manager pods of selector in ns with their whole log as
// the kubelet holds it now: for a pod an earlier test followed, whose stream ended with that test.
// A pod not seen before gets a file too.
func (p *podLogs) reread(ns, selector string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pods, err := clients.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pod := range pods.Items {
		path := filepath.Join(p.dir, pod.Namespace+"_"+pod.Name+".log")
		b, err := clients.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			b = []byte(fmt.Sprintf("node-test: reading the log again: %v\n", err))
		}
		_ = os.WriteFile(path, b, 0o644)
		p.files[string(pod.UID)] = path
	}
}
