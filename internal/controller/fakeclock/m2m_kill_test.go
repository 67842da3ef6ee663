package fakeclock

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	testingclock "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/controller"
	"github.com/credops/thingspace-operator/internal/endpoints"
	"github.com/credops/thingspace-operator/internal/inflight"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// A process killed between a login's two writes, the Secret's and the status's: the tests start a
// manager whose M2MSession status writes fail from a moment on (the kill comes before they land), stop
// it, and start another, as a new leader.

// newBareFixture is a fixture with simulator configuration cfg and no manager: the test starts its own
// (killableManager). Its objects go when the test ends.
func newBareFixture(t *testing.T, name string, cfg simulator.Config) *fixture {
	t.Helper()
	n := nsCount.Add(1)
	f := &fixture{t: t, ns: fmt.Sprintf("fc%d-%s", n, name), clk: testingclock.NewFakeClock(time.Now().Truncate(time.Second))}
	f.key, f.secret = "key-"+f.ns, fmt.Sprintf("S3cret-%d", n)
	cfg.Clock, cfg.Apps = f.clk, map[string]string{f.key: f.secret}
	f.sim = simulator.New(cfg)
	srv := httptest.NewServer(f.sim)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	must(t, k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}))
	t.Cleanup(func() {
		bg := context.Background()
		_ = k8s.DeleteAllOf(bg, &v1alpha1.M2MSession{}, client.InNamespace(f.ns))
		_ = k8s.DeleteAllOf(bg, &v1alpha1.ThingSpaceApp{}, client.InNamespace(f.ns))
		_ = k8s.DeleteAllOf(bg, &v1alpha1.CloudAuthorization{}, client.InNamespace(f.ns))
	})
	return f
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (fn roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return fn(r) }

// killableManager starts a manager for f; while statusLost is on, no M2MSession status write reaches
// the API server. stop cancels it and returns once it has stopped.
func (f *fixture) killableManager(statusLost *atomic.Bool) (stop func()) {
	f.t.Helper()
	return f.ownManager(nil, func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if statusLost.Load() && r.Method != http.MethodGet && strings.Contains(r.URL.Path, "/m2msessions/") && strings.HasSuffix(r.URL.Path, "/status") {
				return nil, errors.New("the process was killed before its status write")
			}
			return rt.RoundTrip(r)
		})
	})
}

// ownManager starts a manager for f whose API requests go through wrap, its persist-critical calls
// registering with tracker (nil: one of its own). stop cancels it, as SIGTERM would, and returns once
// it has stopped.
func (f *fixture) ownManager(tracker *inflight.Tracker, wrap func(http.RoundTripper) http.RoundTripper) (stop func()) {
	t := f.t
	t.Helper()
	c := rest.CopyConfig(cfg0())
	c.WrapTransport = wrap
	co := controller.CacheOptions()
	co.DefaultNamespaces = map[string]cache.Config{f.ns: {}}
	mgr, err := ctrl.NewManager(c, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: co})
	must(t, err)
	must(t, controller.Setup(mgr, controller.Options{AllowInsecureEndpoints: true, AllowedEndpointHosts: endpoints.MustParse("127.0.0.1:*"), MaxConcurrentReconciles: 2,
		UpstreamTimeout: 5 * time.Second, Clock: f.clk, Rand: func() float64 { return 0 }, Backoff: renewal.DefaultBackoff,
		SkipNameValidation: true, OnReconciled: f.observe, InFlight: tracker, WatchNamespaces: []string{f.ns}}))
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

// Issue 14 (chaos, seed 33): a new leader logged in again for the rotating session on the standby app,
// whose handover login its predecessor had written to the Secret and was killed before recording in
// status: the status still named the replaced token, so the handover looked due. The Secret records the
// login (annotation session-login); the new leader takes it from there and makes no login.
func TestM2MKillAfterHandoverLoginCostsNoLogin(t *testing.T) {
	f := newBareFixture(t, "m2m-kill-handover", simulator.Config{TokenLifetime: handoverLifetime})
	lost := &atomic.Bool{}
	stop := f.killableManager(lost)
	handoverWorld(f, true)
	f.create(newSession("s"))
	sess := &v1alpha1.M2MSession{}
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.settle(300 * time.Millisecond)
	f.walkValidTo("s-session", f.tsApp("app").Status.NextHandoverTime.Time, 5*time.Minute)
	f.get("s", sess)
	replacedDigest := sess.Status.LoginTokenDigest

	lost.Store(true)
	_, published := f.nextHandover()
	f.eventually("the handover login in the Secret", 20*time.Second, func() bool { return f.current("s-session").bearer == published })
	f.settle(300 * time.Millisecond)
	stop() // killed: the status write never landed
	if n := logins(f); n != 2 {
		t.Fatalf("%d logins by the first process, want 2", n)
	}
	f.get("s", sess)
	if sess.Status.LoginTokenDigest != replacedDigest {
		t.Fatal("the handover login's status write landed: the test did not kill between the two writes")
	}

	lost.Store(false)
	f.killableManager(lost) // the new leader
	f.eventually("the new leader's status", 20*time.Second, func() bool {
		f.get("s", sess)
		return sess.Status.LoginTokenDigest == policy.TokenDigest(published)
	})
	f.walkValid("s-session", 10*time.Minute, 5*time.Minute)
	if n := logins(f); n != 2 {
		t.Fatalf("%d logins, want 2: the new leader logged in again for the session in the Secret", n)
	}
}

// The same kill after the first login of a session that logs in again each interval (no account): the
// status had no login, so the re-login looked due at once.
func TestM2MKillAfterFirstLoginCostsNoLogin(t *testing.T) {
	f := newBareFixture(t, "m2m-kill-relogin", simulator.Config{TokenLifetime: 24 * time.Hour})
	lost := &atomic.Bool{}
	stop := f.killableManager(lost)
	m2mWorld(f)
	lost.Store(true)
	f.create(newSession("s", func(s *v1alpha1.M2MSession) { s.Spec.KeepAlive.AccountName = "" }))
	f.eventually("the login in the Secret", 20*time.Second, func() bool { return f.current("s-session").session != "" })
	f.settle(300 * time.Millisecond)
	stop()
	sess := &v1alpha1.M2MSession{}
	if f.get("s", sess); sess.Status.LastLoginTime != nil {
		t.Fatal("the login's status write landed: the test did not kill between the two writes")
	}

	lost.Store(false)
	f.killableManager(lost)
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.settle(300 * time.Millisecond)
	if n := f.sim.Stats().Total(loginRoute); n != 1 {
		t.Fatalf("%d logins, want 1: the new leader logged in again for the session in the Secret", n)
	}
	f.get("s", sess)
	if sess.Status.LastLoginTime == nil || sess.Status.NextKeepAliveTime == nil ||
		!sess.Status.NextKeepAliveTime.Time.Equal(sess.Status.LastLoginTime.Add(10*time.Minute)) {
		t.Fatalf("status after the adoption: %+v", sess.Status)
	}
	// The interval's re-login still comes when due.
	f.stepTo(sess.Status.NextKeepAliveTime.Time)
	f.eventually("the interval's re-login", 20*time.Second, func() bool { return f.sim.Stats().Total(loginRoute) == 2 })
}
