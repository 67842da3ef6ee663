//go:build node

package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credops/thingspace-operator/test/harness"
)

const (
	release       = "tsop"
	operatorNS    = "thingspace-operator"
	leaseName     = "thingspace-operator.credops.io"
	managerLabels = "app.kubernetes.io/name=thingspace-operator"
	// Short lease timings, so a handover after a lost leader takes seconds, not a minute.
	leaseDuration = "15s"
	renewDeadline = "10s"
	retryPeriod   = "2s"
)

// run runs a command of the install path (helm, kustomize) and returns its output; a failure fails t
// with the output.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

// chartValues are the values every install of the tests uses, over the chart's defaults: the image
// loaded into the node, plain-http endpoints and the allow-list of the simulator, short lease timings.
func chartValues(t *testing.T, tag string, replicas int) string {
	t.Helper()
	v := map[string]any{
		"image":        map[string]any{"repository": repoOf(image), "tag": tag, "pullPolicy": "Never"},
		"replicaCount": replicas,
		"leaderElection": map[string]any{
			"leaseDuration": leaseDuration, "renewDeadline": renewDeadline, "retryPeriod": retryPeriod,
		},
		"extraArgs":            []string{"--allow-insecure-endpoints", "--upstream-timeout=5s"},
		"allowedEndpointHosts": allowedHosts(),
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "values.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// simHostPort is the simulator's host:port.
func simHostPort() string { return strings.TrimPrefix(sim.url, "http://") }

// allowedHosts are the manager's --allowed-endpoint-hosts in these tests: the simulator's and the
// workload proof's simulators' host:port.
func allowedHosts() []string {
	return []string{simHostPort(), proofSims.oneKey.hostPort(), proofSims.standby.hostPort()}
}

func chartDir() string { return filepath.Join(repo, "charts", "thingspace-operator") }

// helm runs helm against the node with the release's namespace.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	began := time.Now()
	out := run(t, helmBin, append(args, "--namespace", operatorNS)...)
	t.Logf("helm %s took %s", args[0], time.Since(began).Round(100*time.Millisecond))
	return out
}

// waitRollout waits until the manager Deployment has rolled out replicas ready pods of the current
// template and no other pods, and returns their names.
func waitRollout(t *testing.T, ns, name string, replicas int32) []string {
	t.Helper()
	var pods []string
	err := harness.WaitFor(t.Context(), 4*time.Minute, time.Second, func() (bool, error) {
		d := &appsv1.Deployment{}
		if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, d); err != nil {
			return false, client404(err)
		}
		st := d.Status
		if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != replicas ||
			st.ReadyReplicas != replicas || st.Replicas != replicas {
			return false, nil
		}
		pods = runningPods(t, ns, metav1.FormatLabelSelector(d.Spec.Selector))
		return len(pods) == int(replicas), nil
	})
	if err != nil {
		t.Fatalf("Deployment %s/%s did not roll out %d ready replicas: %v\n%s", ns, name, replicas, err, describePods(ns))
	}
	return pods
}

// runningPods lists the running pods of selector in ns that are not being deleted.
func runningPods(t *testing.T, ns, selector string) []string {
	t.Helper()
	list, err := clients.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	var names []string
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			names = append(names, p.Name)
		}
	}
	return names
}

// describePods says what the manager pods are doing, for a failure message.
func describePods(ns string) string {
	list, err := clients.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range list.Items {
		fmt.Fprintf(&b, "pod %s: phase %s", p.Name, p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			fmt.Fprintf(&b, ", %s ready=%v restarts=%d state=%+v", cs.Name, cs.Ready, cs.RestartCount, cs.State)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// leader returns the pod name holding the leader-election Lease ("" when none).
func leader(t *testing.T) string {
	t.Helper()
	l := &coordinationv1.Lease{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: operatorNS, Name: leaseName}, l); err != nil {
		if apierrors.IsNotFound(err) {
			return ""
		}
		t.Fatalf("get Lease: %v", err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	pod, _, _ := strings.Cut(*l.Spec.HolderIdentity, "_")
	return pod
}

// waitLeader waits for a leader among pods other than not, and returns it.
func waitLeader(t *testing.T, not string) string {
	t.Helper()
	var got string
	err := harness.WaitFor(t.Context(), 2*time.Minute, 250*time.Millisecond, func() (bool, error) {
		got = leader(t)
		if got == "" || got == not {
			return false, nil
		}
		for _, p := range runningPods(t, operatorNS, managerLabels) {
			if p == got {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no new leader (Lease holder %q): %v\n%s", got, err, describePods(operatorNS))
	}
	return got
}

func client404(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
