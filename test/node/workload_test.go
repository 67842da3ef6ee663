//go:build node

package node

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// workloadScript reads the mounted token on every use, as the README tells workloads to, calls the
// upstream with it, and prints a digest of the token (never the token) with the upstream's verdict.
const workloadScript = `while true; do
  t=$(cat /var/run/thingspace/access_token 2>/dev/null)
  h=$(printf %%s "$t" | sha256sum | cut -c1-16)
  if timeout 3 wget -q -O /dev/null --header "Authorization: Bearer $t" %s%s; then r=accepted; else r=rejected; fi
  echo "$h $r"
  sleep 0.2
done`

// digest is what the workload prints for token.
func digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])[:16]
}

func hostPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

// workload is a pod of the tenant that mounts the app token Secret as a whole volume (a subPath or
// an env var would never see a rotation) and reports what it reads.
type workload struct {
	name string

	mu    sync.Mutex
	lines []seen
}

// seen is one report of the workload, timestamped on arrival here.
type seen struct {
	at       time.Time
	digest   string
	accepted bool
}

// startWorkload runs the workload pod and follows its log until ctx ends (the pod is deleted then).
func startWorkload(ctx context.Context, t *testing.T, name string) *workload {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: name, Labels: map[string]string{"app": "node-workload"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			AutomountServiceAccountToken:  ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65534),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{
				Name: "workload", Image: busybox, ImagePullPolicy: corev1.PullNever,
				Command:      []string{"sh", "-c", fmt.Sprintf(workloadScript, sim.url, workloadCheckPath)},
				VolumeMounts: []corev1.VolumeMount{{Name: "token", MountPath: "/var/run/thingspace", ReadOnly: true}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			}},
			Volumes: []corev1.Volume{{Name: "token", VolumeSource: corev1.VolumeSource{
				Secret: &corev1.SecretVolumeSource{SecretName: appSecretName}}}},
		},
	}
	must(t, k8s.Create(t.Context(), pod))
	context.AfterFunc(ctx, func() {
		_ = k8s.Delete(context.Background(), pod, client.GracePeriodSeconds(0))
	})
	err := harness.WaitFor(t.Context(), 2*time.Minute, 250*time.Millisecond, func() (bool, error) {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(pod), pod); err != nil {
			return false, err
		}
		return pod.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("workload pod not running: %v (phase %s, %+v)", err, pod.Status.Phase, pod.Status.ContainerStatuses)
	}
	w := &workload{name: name}
	go w.follow(ctx)
	return w
}

// follow reads the workload's log until ctx ends. A log stream runs through the kubelet, so it ends
// when the kubelet restarts: it is opened again from the last line's timestamp.
func (w *workload) follow(ctx context.Context) {
	var last time.Time
	for ctx.Err() == nil {
		opts := &corev1.PodLogOptions{Follow: true, Timestamps: true}
		if !last.IsZero() {
			opts.SinceTime = &metav1.Time{Time: last}
		}
		rc, err := clients.CoreV1().Pods(tenantNS).GetLogs(w.name, opts).Stream(ctx)
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			stamp, rest, _ := strings.Cut(sc.Text(), " ")
			ts, err := time.Parse(time.RFC3339Nano, stamp)
			if err != nil || !ts.After(last) {
				continue // seen before the stream was opened again
			}
			last = ts
			if d, verdict, ok := strings.Cut(rest, " "); ok {
				w.mu.Lock()
				w.lines = append(w.lines, seen{at: time.Now(), digest: d, accepted: verdict == "accepted"})
				w.mu.Unlock()
			}
		}
		rc.Close()
	}
}

// waitReads waits until the workload reports token accepted, and returns when it first did and how
// many reports since `since` found the upstream rejecting what the pod read.
func (w *workload) waitReads(t *testing.T, token string, since time.Time, timeout time.Duration) (time.Time, int) {
	t.Helper()
	want := digest(token)
	var first time.Time
	rejected := 0
	err := harness.WaitFor(t.Context(), timeout, 50*time.Millisecond, func() (bool, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		rejected = 0
		for _, l := range w.lines {
			if l.at.Before(since) {
				continue
			}
			if !l.accepted {
				rejected++
			}
			if l.digest == want && l.accepted {
				first = l.at
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the workload did not read the token in the Secret (%s), accepted upstream, within %s: %v; it read %s; its log ends:\n%s", want,
			timeout, err, w.summary(since), w.tail(t))
	}
	return first, rejected
}

// rotate asks for a new app token (the refresh-requested annotation) and returns the new token and
// when the Secret was seen holding it.
func rotate(t *testing.T, old string) (string, time.Time) {
	t.Helper()
	app := tenantApp()
	must(t, k8s.Get(t.Context(), client.ObjectKeyFromObject(app), app))
	patch := client.MergeFrom(app.DeepCopy())
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	app.Annotations[v1alpha1.RefreshRequestedAnnotation] = time.Now().UTC().Format(time.RFC3339Nano)
	must(t, k8s.Patch(t.Context(), app, patch))
	var token string
	var at time.Time
	err := harness.WaitFor(t.Context(), time.Minute, 20*time.Millisecond, func() (bool, error) {
		data, _ := secretData(t, appSecretName)
		token = string(data[v1alpha1.SecretKeyAccessToken])
		at = time.Now()
		return token != "" && token != old, nil
	})
	if err != nil {
		t.Fatalf("the app token Secret was not rotated: %v", err)
	}
	sensitive.Add("an app token", token)
	return token, at
}

// measureRotations rotates n times and returns the delays from the Secret change to the workload's
// first accepted read of the new token, sorted, and the rejected reads between.
func measureRotations(t *testing.T, w *workload, n int, timeout time.Duration) ([]time.Duration, int) {
	t.Helper()
	data, _ := secretData(t, appSecretName)
	token := string(data[v1alpha1.SecretKeyAccessToken])
	var delays []time.Duration
	rejected := 0
	for range n {
		var changed time.Time
		token, changed = rotate(t, token)
		read, r := w.waitReads(t, token, changed, timeout)
		delays = append(delays, read.Sub(changed))
		rejected += r
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	return delays, rejected
}

func formatDelays(d []time.Duration) string {
	parts := make([]string, len(d))
	for i, x := range d {
		parts[i] = x.Round(10 * time.Millisecond).String()
	}
	return strings.Join(parts, ", ")
}

// summary says what the workload read since since: each token digest with its verdicts, and when it
// last reported, for a failure message.
func (w *workload) summary(since time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	var last time.Time
	prev := ""
	n := 0
	flush := func() {
		if n > 0 {
			fmt.Fprintf(&b, "[%s ×%d] ", prev, n)
		}
	}
	for _, l := range w.lines {
		last = l.at
		if l.at.Before(since) {
			continue
		}
		key := l.digest + map[bool]string{true: " accepted", false: " rejected"}[l.accepted]
		if key != prev {
			flush()
			prev, n = key, 0
		}
		n++
	}
	flush()
	fmt.Fprintf(&b, "(%d reports in all, the last %s ago)", len(w.lines), time.Since(last).Round(time.Millisecond))
	return b.String()
}

// tail is the end of the workload's log read afresh, for a failure message.
func (w *workload) tail(t *testing.T) string {
	b, err := clients.CoreV1().Pods(tenantNS).GetLogs(w.name, &corev1.PodLogOptions{Timestamps: true, TailLines: ptr.To[int64](5)}).DoRaw(t.Context())
	if err != nil {
		return err.Error()
	}
	return string(b)
}
