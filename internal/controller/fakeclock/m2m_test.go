package fakeclock

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/controller"
	"github.com/credops/thingspace-operator/internal/endpoints"
	"github.com/credops/thingspace-operator/internal/inflight"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/simulator"
)

const (
	uwsUser     = "fleet-uws"
	uwsPassword = "Str0ng!Passw0rd"
	logoutRoute = "POST /api/m2m/v1/session/logout"
	resetRoute  = "PUT /api/m2m/v1/session/password/actions/reset"
)

// m2mWorld adds a Ready app "app", the UWS user and its credentials Secret "uws" to f.
func m2mWorld(f *fixture) {
	f.t.Helper()
	f.sim.SetM2MUser(uwsUser, uwsPassword)
	f.credentials("app-creds", map[string]string{v1alpha1.CredentialsKeyKey: f.key, v1alpha1.CredentialsKeySecret: f.secret})
	f.app("app", "app-creds")
	f.waitCondition("app", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	f.credentials("uws", map[string]string{v1alpha1.CredentialsKeyUsername: uwsUser, v1alpha1.CredentialsKeyPassword: uwsPassword})
}

func newSession(name string, mutate ...func(*v1alpha1.M2MSession)) *v1alpha1.M2MSession {
	s := &v1alpha1.M2MSession{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.M2MSessionSpec{
			AppRef:               &v1alpha1.LocalObjectReference{Name: "app"},
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "uws"},
			SecretName:           name + "-session",
			KeepAlive:            v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: 10 * time.Minute}, AccountName: "0000123456-00001"},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

// Issue 8 scenario 14: deleting an M2MSession whose logout keeps failing transiently held the object
// for as long as the app token stayed valid. A session idle for 20 minutes has ended on the platform
// anyway: past that, the finalizer goes without a logout.
func TestM2MDeletionDoesNotOutwaitTheIdleTimeout(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: 2 * time.Hour})
	m2mWorld(f)
	f.create(newSession("s"))
	f.waitCondition("s", &v1alpha1.M2MSession{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.settle(300 * time.Millisecond)

	f.sim.SetFaults(simulator.Faults{Rate: 1, Status: 503})
	s := &v1alpha1.M2MSession{}
	f.get("s", s)
	must(t, k8s.Delete(context.Background(), s))
	f.eventually("a logout attempt", 20*time.Second, func() bool { return f.sim.Stats().Total(logoutRoute) > 0 })
	// Within the idle timeout the logout is retried and the object held.
	for range 5 {
		f.step(3 * time.Minute)
		f.settle(200 * time.Millisecond)
	}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: "s"}, &v1alpha1.M2MSession{}); err != nil {
		t.Fatalf("the session went before its idle timeout (%v): a retryable logout was given up early", err)
	}
	tries := f.sim.Stats().Total(logoutRoute)
	if tries < 2 {
		t.Fatalf("%d logout attempts within 15 minutes, want retries", tries)
	}
	// Past 20 minutes since the session was last used, the logout is moot.
	f.step(6 * time.Minute)
	f.eventually("the deleted session gone", 20*time.Second, func() bool {
		err := k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: "s"}, &v1alpha1.M2MSession{})
		if !apierrors.IsNotFound(err) {
			f.step(time.Second) // let a retry that is due fire
			return false
		}
		return true
	})
}

// m2mManager is a manager of its own for ns on clk, with the tracker its persist-critical calls
// register with; stop cancels it (as SIGTERM would) and returns once it has stopped.
// newOwnFixture is a fixture without a manager: the test starts and stops its own (m2mManager), on the
// fixture's clock. Its objects go when the test ends.
func newOwnFixture(t *testing.T, name, secret string) *fixture {
	t.Helper()
	ns := fmt.Sprintf("fc%d-%s", nsCount.Add(1), name)
	clk := testingclock.NewFakeClock(time.Now().Truncate(time.Second))
	sim := simulator.New(simulator.Config{Clock: clk, TokenLifetime: 24 * time.Hour, Apps: map[string]string{"key-" + ns: secret}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	must(t, k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	t.Cleanup(func() {
		bg := context.Background()
		_ = k8s.DeleteAllOf(bg, &v1alpha1.M2MSession{}, client.InNamespace(ns))
		_ = k8s.DeleteAllOf(bg, &v1alpha1.ThingSpaceApp{}, client.InNamespace(ns))
	})
	return &fixture{t: t, ns: ns, clk: clk, sim: sim, url: srv.URL, key: "key-" + ns, secret: secret}
}

func m2mManager(t *testing.T, ns string, clk *testingclock.FakeClock, tracker *inflight.Tracker) (stop func()) {
	t.Helper()
	co := controller.CacheOptions()
	co.DefaultNamespaces = map[string]cache.Config{ns: {}}
	mgr, err := ctrl.NewManager(cfg0(), ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: co})
	must(t, err)
	must(t, controller.Setup(mgr, controller.Options{AllowInsecureEndpoints: true, AllowedEndpointHosts: endpoints.MustParse("127.0.0.1:*"), MaxConcurrentReconciles: 2,
		UpstreamTimeout: 10 * time.Second, Clock: clk, Rand: func() float64 { return 0 }, Backoff: renewal.DefaultBackoff,
		SkipNameValidation: true, InFlight: tracker}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// Issue 8 scenario 5: a SIGTERM while a password reset waits for its answer cancelled the call; the
// platform had applied the reset, and the new password was never stored. The reset now runs past
// cancellation, registered with the in-flight tracker, and its answer is in the credentials Secret
// before the tracker drains.
func TestM2MPasswordResetDuringShutdownIsStored(t *testing.T) {
	f := newOwnFixture(t, "m2m-reset-shutdown", "S3cret-reset")
	ns, clk, sim := f.ns, f.clk, f.sim
	tracker := &inflight.Tracker{}
	stop := m2mManager(t, ns, clk, tracker)

	m2mWorld(f)
	f.create(newSession("s", func(s *v1alpha1.M2MSession) {
		s.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: time.Hour}}
		s.Spec.LogoutOnDelete = new(bool)
	}))
	f.waitCondition("s", &v1alpha1.M2MSession{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)

	// The platform applies the reset at once and holds its answer for 3 s.
	sim.SetM2MResetDelay(3 * time.Second)
	// Keep-alives every 10 minutes along the way; the reset falls due after an hour.
	for range 6 {
		clk.Step(10*time.Minute + time.Second)
		time.Sleep(100 * time.Millisecond)
	}
	f.eventually("the platform applied a reset", 20*time.Second, func() bool {
		info, _ := sim.M2MUser(uwsUser)
		return info.Password != uwsPassword
	})
	stop() // SIGTERM while the answer is held
	drained := make(chan bool)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		drained <- tracker.Drain(ctx)
	}()
	if !<-drained {
		t.Fatal("the in-flight reset did not end within 20 s")
	}
	info, _ := sim.M2MUser(uwsUser)
	got := string(f.secretData("uws")[v1alpha1.CredentialsKeyPassword])
	switch {
	case got == uwsPassword:
		t.Fatal("after shutdown the credentials Secret holds the old password: the reset's answer was lost")
	case got != info.Password:
		t.Fatal("after shutdown the credentials Secret holds neither the old nor the platform's password")
	}
	if n := sim.Stats().Count(resetRoute, 200); n != 1 {
		t.Errorf("%d resets answered, want 1", n)
	}
}
