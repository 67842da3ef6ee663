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
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

	// statuses collects the status of every ThingSpaceApp as a namespace is cleaned up, for the leak check.
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
		fmt.Fprintln(os.Stderr, "--- FAIL: leak check (manager log, Events, statuses)")
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

	// Building and starting the control plane overlap: both take seconds.
	type built struct {
		mgr, sim string
		err      error
	}
	bc := make(chan built, 1)
	go func() {
		m, s, err := harness.BuildBinaries(ctx, filepath.Join(workDir, "bin"))
		bc <- built{m, s, err}
	}()
	var err error
	cp, err = harness.StartControlPlane(ctx)
	b := <-bc
	if err != nil {
		return err
	}
	k8s = cp.Client
	if b.err != nil {
		return b.err
	}
	simBin = b.sim

	shared, err = harness.SimConfig{
		Binary:  simBin,
		Args:    []string{"--app", sharedKey + ":" + sharedSecret, "--token-lifetime", lifetime.String()},
		LogPath: filepath.Join(workDir, "sim-shared.log"),
	}.Start(ctx)
	if err != nil {
		return err
	}
	mgr, err = harness.ManagerConfig{
		Binary:     b.mgr,
		Kubeconfig: cp.KubeconfigPath,
		// Debug logging: the more the manager says, the more the leak check sees.
		Args:    []string{"--zap-log-level=debug", "--upstream-timeout=" + upstreamTimeout.String()},
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

// checkLeaks scans the manager's log, all Events and the collected statuses for sensitive values.
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
		collectStatus(&apps.Items[i])
	}
	clouds := &v1alpha1.CloudAuthorizationList{}
	if err := k8s.List(ctx, clouds); err != nil {
		return nil, fmt.Errorf("list CloudAuthorizations: %w", err)
	}
	for i := range clouds.Items {
		collectCloudStatus(&clouds.Items[i])
	}
	statusesMu.Lock()
	for _, s := range statuses {
		leaks = append(leaks, sensitive.Scan("a status", s)...)
	}
	n := len(statuses)
	statusesMu.Unlock()
	fmt.Fprintf(os.Stderr, "e2e: leak check: %d sensitive values against the manager log (%d bytes), %d Events, %d statuses\n",
		sensitive.Len(), len(logs), len(events.Items), n)
	return leaks, nil
}

func collectStatus(app *v1alpha1.ThingSpaceApp) {
	b, _ := json.Marshal(app.Status)
	statusesMu.Lock()
	statuses = append(statuses, string(b))
	statusesMu.Unlock()
}

func collectCloudStatus(ca *v1alpha1.CloudAuthorization) {
	b, _ := json.Marshal(ca.Status)
	statusesMu.Lock()
	statuses = append(statuses, string(b))
	statusesMu.Unlock()
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// newNamespace creates a namespace for t. Cleanup records the statuses of its ThingSpaceApps and
// CloudAuthorizations for the leak check, deletes them (finalizers removed: their simulator may be gone)
// and deletes the namespace (envtest has no namespace controller, so it stays Terminating; its Events
// stay for the leak check).
func newNamespace(t *testing.T) string {
	t.Helper()
	base := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 40 {
		base = base[:40]
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + base + "-" + randHex(5)}}
	if err := k8s.Create(t.Context(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		apps := &v1alpha1.ThingSpaceAppList{}
		if err := k8s.List(ctx, apps, client.InNamespace(ns.Name)); err != nil {
			t.Errorf("cleanup: list apps: %v", err)
		}
		for i := range apps.Items {
			app := &apps.Items[i]
			collectStatus(app)
			if len(app.Finalizers) > 0 {
				patch := client.MergeFrom(app.DeepCopy())
				app.Finalizers = nil
				_ = k8s.Patch(ctx, app, patch)
			}
			if err := k8s.Delete(ctx, app); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("cleanup: delete app %s: %v", app.Name, err)
			}
		}
		clouds := &v1alpha1.CloudAuthorizationList{}
		if err := k8s.List(ctx, clouds, client.InNamespace(ns.Name)); err != nil {
			t.Errorf("cleanup: list CloudAuthorizations: %v", err)
		}
		for i := range clouds.Items {
			ca := &clouds.Items[i]
			collectCloudStatus(ca)
			if err := k8s.Delete(ctx, ca); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("cleanup: delete CloudAuthorization %s: %v", ca.Name, err)
			}
		}
		_ = k8s.Delete(ctx, ns)
	})
	return ns.Name
}

// newSim starts a simulator of t's own with the given token lifetime and apps ("key:secret"); its
// counts are t's alone. Start it before newNamespace, so that the apps are gone before it stops.
func newSim(t *testing.T, tokenLifetime string, apps ...string) *harness.Sim {
	t.Helper()
	args := []string{"--token-lifetime", tokenLifetime}
	for _, a := range apps {
		key, secret, _ := strings.Cut(a, ":")
		sensitive.AddCredentials(key, secret)
		args = append(args, "--app", a)
	}
	sim, err := harness.SimConfig{
		Binary:  simBin,
		Args:    args,
		LogPath: filepath.Join(workDir, "sim-"+nonName.ReplaceAllString(strings.ToLower(t.Name()), "-")+".log"),
	}.Start(t.Context())
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() {
		if err := sim.Stop(); err != nil {
			t.Errorf("stop simulator: %v", err)
		}
	})
	return sim
}

func createCredentials(t *testing.T, ns, name, key, secret string) {
	t.Helper()
	sensitive.AddCredentials(key, secret)
	if err := harness.CreateCredentials(t.Context(), k8s, ns, name, key, secret); err != nil {
		t.Fatalf("create credentials Secret %s: %v", name, err)
	}
}

func createApp(t *testing.T, app *v1alpha1.ThingSpaceApp) {
	t.Helper()
	if err := k8s.Create(t.Context(), app); err != nil {
		t.Fatalf("create ThingSpaceApp %s: %v", app.Name, err)
	}
}

// readToken reads the token in a target Secret and records it for the leak check.
func readToken(t *testing.T, ns, secretName string) (string, time.Time) {
	t.Helper()
	tok, exp, err := harness.ReadToken(t.Context(), k8s, ns, secretName)
	if err != nil {
		t.Fatalf("read token: %v", err)
	}
	sensitive.Add("a token", tok)
	return tok, exp
}

func getApp(t *testing.T, ns, name string) *v1alpha1.ThingSpaceApp {
	t.Helper()
	app := &v1alpha1.ThingSpaceApp{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, app); err != nil {
		t.Fatalf("get ThingSpaceApp %s: %v", name, err)
	}
	return app
}

// waitApp polls the app until ok holds.
func waitApp(t *testing.T, ns, name string, timeout time.Duration, what string, ok func(*v1alpha1.ThingSpaceApp) bool) *v1alpha1.ThingSpaceApp {
	t.Helper()
	var last *v1alpha1.ThingSpaceApp
	err := harness.WaitFor(t.Context(), timeout, 50*time.Millisecond, func() (bool, error) {
		app := &v1alpha1.ThingSpaceApp{}
		if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, app); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		last = app
		return ok(app), nil
	})
	if err != nil {
		t.Fatalf("ThingSpaceApp %s/%s: waiting for %s: %v; last status: %s", ns, name, what, err, describe(last))
	}
	return last
}

// waitCondition waits until Ready has the given status and reason for the current generation.
func waitCondition(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string, timeout time.Duration) *v1alpha1.ThingSpaceApp {
	t.Helper()
	return waitApp(t, ns, name, timeout, fmt.Sprintf("Ready=%s reason %s", status, reason), func(app *v1alpha1.ThingSpaceApp) bool {
		c := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Status == status && c.Reason == reason && c.ObservedGeneration == app.Generation
	})
}

func waitReady(t *testing.T, ns, name string) *v1alpha1.ThingSpaceApp {
	t.Helper()
	return waitCondition(t, ns, name, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 30*time.Second)
}

func describe(app *v1alpha1.ThingSpaceApp) string {
	if app == nil {
		return "(not found)"
	}
	c := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil {
		return fmt.Sprintf("no Ready condition (generation %d)", app.Generation)
	}
	return fmt.Sprintf("Ready=%s reason=%s message=%q observedGeneration=%d/%d failedAttempts=%d",
		c.Status, c.Reason, c.Message, c.ObservedGeneration, app.Generation, app.Status.FailedRefreshAttempts)
}

// calls returns the simulator's request count for route: all statuses when status is 0.
func calls(t *testing.T, sim *harness.Sim, route string, status int) int {
	t.Helper()
	var n int
	var err error
	if status == 0 {
		n, err = sim.Total(route)
	} else {
		n, err = sim.Count(route, status)
	}
	if err != nil {
		t.Fatalf("simulator stats: %v", err)
	}
	return n
}

func stats(t *testing.T, sim *harness.Sim) map[string]map[string]int {
	t.Helper()
	st, err := sim.Stats()
	if err != nil {
		t.Fatalf("simulator stats: %v", err)
	}
	return st
}

// patchAnnotations merges annotations into the app's metadata.
func patchAnnotations(t *testing.T, ns, name string, annotations map[string]string) {
	t.Helper()
	app := getApp(t, ns, name)
	patch := client.MergeFrom(app.DeepCopy())
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	for k, v := range annotations {
		app.Annotations[k] = v
	}
	if err := k8s.Patch(t.Context(), app, patch); err != nil {
		t.Fatalf("annotate %s: %v", name, err)
	}
}
