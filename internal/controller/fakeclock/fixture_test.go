package fakeclock

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	testingclock "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/controller"
	"github.com/credops/thingspace-operator/internal/endpoints"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// syncBuffer collects the managers' logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

var nsCount atomic.Int32

// fixture is one test's namespace, fake clock, simulator (on the same clock) and manager.
type fixture struct {
	t   *testing.T
	ns  string
	clk *testingclock.FakeClock
	sim *simulator.Server
	// url is the simulator's base URL, for spec.endpoint.
	url string
	// key and secret are an app registered with the simulator (ThingSpace and Cloud).
	key, secret string

	// api counts the manager's writes and can make its cache lag (apiwrites_test.go).
	api *apiWrites

	mu      sync.Mutex
	results []outcome
}

// outcome is one reconcile's result, with the fake time it ended at.
type outcome struct {
	controller string
	name       string
	res        reconcile.Result
	err        error
	at         time.Time
}

// options adjusts the manager's controller options before it starts.
type options func(*controller.Options)

// newFixture starts a manager on a fake clock for a namespace of the test's own. cfg configures the
// simulator (its Clock and Apps are set here). The manager stops when the test ends.
func newFixture(t *testing.T, cfg simulator.Config, opts ...options) *fixture {
	t.Helper()
	n := nsCount.Add(1)
	ns := fmt.Sprintf("fc%d-%s", n, strings.ToLower(strings.NewReplacer("_", "-", "/", "-").Replace(t.Name())))
	if len(ns) > 60 {
		ns = ns[:60]
	}
	f := &fixture{t: t, ns: strings.TrimRight(ns, "-"),
		// Close to the real time: the API server stamps creation times with it.
		clk: testingclock.NewFakeClock(time.Now().Truncate(time.Second)), api: newAPIWrites()}
	f.key, f.secret = "key-"+f.ns, fmt.Sprintf("S3cret-%d", n)
	cfg.Clock = f.clk
	cfg.Apps = map[string]string{f.key: f.secret}
	f.sim = simulator.New(cfg)
	srv := httptest.NewServer(f.sim)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	must(t, k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}))

	co := controller.CacheOptions()
	co.DefaultNamespaces = map[string]cache.Config{f.ns: {}}
	rc := rest.CopyConfig(cfg0())
	rc.WrapTransport = f.api.wrap
	mgr, err := ctrl.NewManager(rc, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: co})
	must(t, err)
	o := controller.Options{
		AllowInsecureEndpoints: true, AllowedEndpointHosts: endpoints.MustParse("127.0.0.1:*"), MaxConcurrentReconciles: 2, UpstreamTimeout: 5 * time.Second,
		Clock: f.clk, Rand: func() float64 { return 0 }, Backoff: renewal.DefaultBackoff,
		SkipNameValidation: true, OnReconciled: f.observe,
		// The cluster kinds' Secrets in the test's own namespace: the only one its manager watches (the
		// metadata cache of credentials Secrets too: a manager watching every namespace finished another
		// test's refresh that its stopped manager had left half done).
		ClusterResourceNamespace: f.ns, WatchNamespaces: []string{f.ns},
	}
	for _, opt := range opts {
		opt(&o)
	}
	must(t, controller.Setup(mgr, o))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	t.Cleanup(func() {
		// Objects go first while the manager still runs its finalizers, on a clock far ahead so that
		// nothing waits for a deadline.
		bg := context.Background()
		for _, l := range []client.Object{&v1alpha1.M2MSession{}, &v1alpha1.ThingSpaceApp{}, &v1alpha1.CloudAuthorization{}} {
			_ = k8s.DeleteAllOf(bg, l, client.InNamespace(f.ns))
		}
		f.clk.Step(time.Hour)
		cancel()
		<-done
		_ = k8s.Delete(bg, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}})
	})
	return f
}

func cfg0() *rest.Config { return cfg }

func (f *fixture) observe(ctrlName string, req reconcile.Request, res reconcile.Result, err error) {
	if req.Namespace != f.ns {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results = append(f.results, outcome{controller: ctrlName, name: req.Name, res: res, err: err, at: f.clk.Now()})
}

// lastResult is the latest reconcile outcome of the object name handled by the controller whose
// reconciler type name contains kind ("ThingSpaceApp", "M2MSession", "CloudAuthorization").
func (f *fixture) lastResult(kind, name string) (outcome, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.results) - 1; i >= 0; i-- {
		if r := f.results[i]; r.name == name && strings.Contains(r.controller, kind+"Reconciler") {
			return r, true
		}
	}
	return outcome{}, false
}

// step moves the fake clock forward by d; requeues due by then fire.
func (f *fixture) step(d time.Duration) { f.clk.Step(d) }

// stepTo moves the fake clock to t (never backwards).
func (f *fixture) stepTo(t time.Time) {
	if d := t.Sub(f.clk.Now()); d > 0 {
		f.clk.Step(d)
	}
}

// eventually polls cond in real time (the operator works in real time between steps) and fails the
// test with what after within.
func (f *fixture) eventually(what string, within time.Duration, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle waits until no reconcile has ended for quiet (real time): the operator has done what the
// current fake time asks of it.
func (f *fixture) settle(quiet time.Duration) {
	f.t.Helper()
	last, since := -1, time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		f.mu.Lock()
		n := len(f.results)
		f.mu.Unlock()
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
	}
	f.t.Fatal("the operator never settled")
}

// create creates obj in the fixture's namespace.
func (f *fixture) create(obj client.Object) {
	f.t.Helper()
	obj.SetNamespace(f.ns)
	must(f.t, k8s.Create(context.Background(), obj))
}

// get reads obj (by its name) from the fixture's namespace.
func (f *fixture) get(name string, obj client.Object) {
	f.t.Helper()
	must(f.t, k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: name}, obj))
}

// credentials creates a Secret name holding data.
func (f *fixture) credentials(name string, data map[string]string) {
	f.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: data}
	f.create(s)
}

// secretData reads Secret name's data; nil when absent.
func (f *fixture) secretData(name string) map[string][]byte {
	s := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: name}, s); err != nil {
		return nil
	}
	return s.Data
}

// condition returns obj's condition typ after reading it again.
func (f *fixture) condition(name string, obj client.Object, typ string) *metav1.Condition {
	f.t.Helper()
	f.get(name, obj)
	var conds []metav1.Condition
	switch o := obj.(type) {
	case *v1alpha1.ThingSpaceApp:
		conds = o.Status.Conditions
	case *v1alpha1.M2MSession:
		conds = o.Status.Conditions
	case *v1alpha1.CloudAuthorization:
		conds = o.Status.Conditions
	default:
		f.t.Fatalf("no conditions on %T", obj)
	}
	return meta.FindStatusCondition(conds, typ)
}

// waitCondition waits until obj's condition typ has status and reason.
func (f *fixture) waitCondition(name string, obj client.Object, typ string, status metav1.ConditionStatus, reason string) {
	f.t.Helper()
	var last *metav1.Condition
	deadline := time.Now().Add(20 * time.Second)
	for {
		if last = f.condition(name, obj, typ); last != nil && last.Status == status && last.Reason == reason {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: %s never became %s/%s; last %+v", name, typ, status, reason, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// app creates a ThingSpaceApp name on the simulator whose credentials are in Secret creds.
func (f *fixture) app(name, creds string, mutate ...func(*v1alpha1.ThingSpaceApp)) *v1alpha1.ThingSpaceApp {
	a := &v1alpha1.ThingSpaceApp{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ThingSpaceAppSpec{Endpoint: f.url, SecretName: name + "-token",
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: creds}},
	}
	for _, m := range mutate {
		m(a)
	}
	f.create(a)
	return a
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
