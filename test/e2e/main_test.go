// Package e2e runs the operator as it is shipped, the manager binary, against a real kube-apiserver
// and etcd (envtest) and the thingspace-sim binary, and checks what users and workloads see: Secrets,
// status conditions, events, and the calls that reached the upstream.
//
// TestMain builds both binaries (or takes E2E_MANAGER_BIN / E2E_SIM_BIN), starts the control plane, a
// shared simulator with short-lived tokens and one manager for the whole suite (its OAuth2 callback on
// a free local port, harness.Manager.CallbackURL, and a short --upstream-timeout). Tests that count
// upstream calls start a simulator of their own, so their counts are theirs alone and they can run in
// parallel. The restart tests are the only serial ones: they restart (or kill) the shared manager.
// After all tests, TestMain checks the manager's log, every Event and every ThingSpaceApp, M2MSession
// and CloudAuthorization status seen for app secrets, issued tokens, authorization codes and credential
// headers; a finding fails the run.
//
// kube-apiserver and etcd come from KUBEBUILDER_ASSETS, else <repo>/bin/k8s (make envtest). Without
// them the suite fails: it is never skipped.
package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// lifetime is the token lifetime of the short-lived simulators: a few seconds, so that rotation can be
// watched several times over within the suite's time budget.
const lifetime = 4 * time.Second

// longLifetime is for simulators whose tokens must not expire during a test.
const longLifetime = "1h"

// upstreamTimeout is the manager's --upstream-timeout: short, so that a refresh interrupted by a killed
// manager is given up on (after upstreamTimeout + 5s) within a test's time, and so that the manager's
// graceful shutdown stays well inside the harness's grace period.
const upstreamTimeout = 3 * time.Second

var (
	k8s     client.Client
	cp      *harness.ControlPlane
	mgr     *harness.Manager
	simBin  string
	workDir string

	// shared is the suite's simulator (lifetime tokens) with the app sharedKey:sharedSecret.
	shared       *harness.Sim
	sharedKey    = "e2e-key"
	sharedSecret = "e2e-" + randHex(12)

	// sensitive holds every app secret and every token the tests saw; none may leak.
	sensitive harness.Sensitive

	// statuses collects the status of every ThingSpaceApp, M2MSession and CloudAuthorization as a
	// namespace is cleaned up, for the leak check.
	statusesMu sync.Mutex
	statuses   []string
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) (code int) {
	flag.Parse()
	// The tests mostly wait on timers (token lifetimes), not on the CPU: run them all at once unless
	// -parallel says otherwise.
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "16")
	}
	start := time.Now()
	var err error
	if workDir, err = os.MkdirTemp("", "thingspace-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() {
		if code == 0 && os.Getenv("E2E_KEEP_LOGS") == "" {
			_ = os.RemoveAll(workDir)
		} else {
			fmt.Fprintf(os.Stderr, "e2e: logs of the manager and simulators kept in %s (E2E_KEEP_LOGS=1 keeps them always)\n", workDir)
		}
	}()

	if err := setUp(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: setup failed:", err)
		tearDown()
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: control plane, simulator and manager up in %v\n", time.Since(start).Round(time.Millisecond))

	code = m.Run()

	if leaks, err := checkLeaks(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: leak check could not run:", err)
		code = 1
	} else if len(leaks) > 0 {
		fmt.Fprintln(os.Stderr, "--- FAIL: leak check (manager log and metrics, Events, statuses)")
		for _, l := range leaks {
			fmt.Fprintln(os.Stderr, "    found", l)
		}
		code = 1
	}
	tearDown()
	return code
}

func setUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sensitive.AddCredentials(sharedKey, sharedSecret)

	var (
		mgrBin string
		err    error
	)
	if cp, mgrBin, simBin, err = harness.StartWithBinaries(ctx, filepath.Join(workDir, "bin")); err != nil {
		return err
	}
	k8s = cp.Client

	shared, err = harness.SimConfig{
		Binary:  simBin,
		Args:    []string{"--app", sharedKey + ":" + sharedSecret, "--token-lifetime", lifetime.String()},
		LogPath: filepath.Join(workDir, "sim-shared.log"),
	}.Start(ctx)
	if err != nil {
		return err
	}
	// The cluster-scoped kinds' Secrets (cluster_test.go).
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: clusterNamespace}}); err != nil {
		return err
	}
	mgr, err = harness.ManagerConfig{
		Binary:     mgrBin,
		Kubeconfig: cp.KubeconfigPath,
		// Debug logging: the more the manager says, the more the leak check sees.
		Args: []string{"--zap-log-level=debug", "--upstream-timeout=" + upstreamTimeout.String(),
			"--cluster-resource-namespace=" + clusterNamespace},
		LogPath: filepath.Join(workDir, "manager.log"),
	}.Start(ctx)
	return err
}

func tearDown() {
	if mgr != nil {
		if err := mgr.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stopping the manager:", err)
		}
	}
	if shared != nil {
		_ = shared.Stop()
	}
	if cp != nil {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stopping the control plane:", err)
		}
	}
}

// checkLeaks scans the manager's log and metrics, all Events and the collected statuses for sensitive
// values.
func checkLeaks() ([]harness.Leak, error) {
	if mgr == nil || cp == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logs := mgr.Logs()
	if logs == "" {
		return nil, fmt.Errorf("the manager log %s is empty", mgr.LogPath)
	}
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() == "" && sensitive.Count("a token") == 0 {
		return nil, fmt.Errorf("no token was recorded: the leak check would prove nothing")
	}
	leaks := sensitive.Scan("the manager log", logs)
	// The metrics too: labels are names and hashes, never a secret.
	expo, err := mgr.Metrics()
	if err != nil {
		return nil, fmt.Errorf("the manager's metrics: %w", err)
	}
	leaks = append(leaks, sensitive.Scan("the manager's metrics", expo)...)

	events := &corev1.EventList{}
	if err := k8s.List(ctx, events); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	for _, e := range events.Items {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		leaks = append(leaks, sensitive.Scan(fmt.Sprintf("Event %s/%s (%s)", e.Namespace, e.Name, e.Reason), string(b))...)
	}
	// Apps still around (a failed test's) count too.
	apps := &v1alpha1.ThingSpaceAppList{}
	if err := k8s.List(ctx, apps); err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	for i := range apps.Items {
		collectStatus(apps.Items[i].Status)
	}
	clouds := &v1alpha1.CloudAuthorizationList{}
	if err := k8s.List(ctx, clouds); err != nil {
		return nil, fmt.Errorf("list CloudAuthorizations: %w", err)
	}
	for i := range clouds.Items {
		collectStatus(clouds.Items[i].Status)
	}
	statusesMu.Lock()
	for _, s := range statuses {
		leaks = append(leaks, sensitive.Scan("a status", s)...)
	}
	n := len(statuses)
	statusesMu.Unlock()
	fmt.Fprintf(os.Stderr, "e2e: leak check: %d sensitive values against the manager log (%d bytes), its metrics (%d bytes), %d Events, %d statuses\n",
		sensitive.Len(), len(logs), len(expo), len(events.Items), n)
	return leaks, nil
}

// collectStatus adds an object's status to the statuses the leak check scans.
func collectStatus(status any) {
	b, _ := json.Marshal(status)
	statusesMu.Lock()
	statuses = append(statuses, string(b))
	statusesMu.Unlock()
}
