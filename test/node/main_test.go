//go:build node

// Package node runs the operator the way users run it: installed as a pod by Helm (and by kustomize)
// under its own ServiceAccount and RBAC, on the local one-node cluster of `make cluster` (a real
// kubelet with containerd), from the image `make image` built offline. It checks what only a real node
// shows: the generated RBAC is enough (any Forbidden in the manager's log fails the run), the image runs
// as non-root with a read-only root filesystem, a workload pod reads a token the upstream accepts from
// its mounted Secret and sees the rotated one (and how long after the Secret changed), leader election
// hands over between two pods, and upgrades, handovers and reinstalls make no upstream calls for valid
// credentials.
//
// The tests run inside the node's network namespace (`make test-node` starts them through
// hack/cluster/in-node.sh), so the API server is at https://127.0.0.1:443 and pods reach this process,
// which serves the simulator, at the pod network's gateway. They carry the build tag `node`, so plain
// `go test ./...` does not build them; `make test-node` does, and fails (never skips) without a node.
package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/test/harness"
)

// Settings from the environment (`make test-node` sets them); the defaults match hack/cluster.
var (
	lab        = envOr("LAB", "/tmp/tsop-lab")
	kubeconfig = envOr("NODE_KUBECONFIG", filepath.Join(lab, "admin.kubeconfig"))
	gatewayIP  = envOr("NODE_GATEWAY_IP", "10.244.0.1")
	image      = envOr("NODE_IMAGE", "thingspace-operator:dev")
	busybox    = envOr("NODE_BUSYBOX_IMAGE", "localhost/busybox:lab")
	ctrAddress = envOr("NODE_CONTAINERD", filepath.Join(lab, "containerd.sock"))
	helmBin    = os.Getenv("HELM")
	kustomize  = os.Getenv("KUSTOMIZE")
)

var (
	k8s     client.Client
	clients *kubernetes.Clientset
	repo    string
	sim     *upstream
	logs    *podLogs
	// sensitive holds every credential and token the tests saw; none may appear in the manager's log.
	sensitive harness.Sensitive
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "node tests:", err)
		return 1
	}
	defer sim.close()
	defer proofSims.oneKey.close()
	defer proofSims.standby.close()
	code := m.Run()
	// Every manager pod's whole log was streamed while it ran: Forbidden (missing RBAC) or a
	// credential in it fails the run.
	if err := logs.check(&sensitive); err != nil {
		fmt.Fprintln(os.Stderr, "node tests: manager logs:", err)
		code = 1
	}
	return code
}

func setup() error {
	var err error
	if repo, err = harness.RepoRoot(); err != nil {
		return err
	}
	if helmBin == "" || kustomize == "" {
		return fmt.Errorf("HELM and KUSTOMIZE must name the helm and kustomize binaries (make test-node sets them)")
	}
	if _, err := os.Stat(kubeconfig); err != nil {
		return fmt.Errorf("no node: %v (run `make cluster` first, or `make test-node`)", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	if k8s, err = client.New(cfg, client.Options{Scheme: harness.NewScheme()}); err != nil {
		return err
	}
	if clients, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := waitNodeReady(ctx); err != nil {
		return err
	}
	if sim, err = startUpstream(gatewayIP); err != nil {
		return err
	}
	if err := startProofSims(gatewayIP); err != nil {
		return err
	}
	logs = newPodLogs(filepath.Join(os.TempDir(), "tsop-node-logs"))
	return nil
}
