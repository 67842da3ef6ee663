package fakeclock

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// ThingSpaceApp findings of the chaos suite (issue 14), on the fake clock.

// withinRetryAfter counts the simulator's token calls made inside an earlier answer's Retry-After for
// the same key: the chaos suite's count.
func (f *fixture) withinRetryAfter() int {
	n := 0
	for _, c := range f.sim.Ledger().Calls {
		if c.WithinRetryAfter {
			n++
		}
	}
	return n
}

// Two apps share a key; at expiry the token call of one is throttled (429, Retry-After 5 s). The other
// must not call inside that Retry-After (the chaos suite counted 2 such token calls for a shared key
// in seed 33): the broker sends nothing for the key until then, and both apps wait for it with a nil
// error and the condition a throttled call shows.
func TestSharedKeyHonoursTheRetryAfterOfTheOtherApp(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour, Ledger: true})
	f.appCreds()
	f.app("a", "creds")
	f.app("b", "creds")
	for _, n := range []string{"a", "b"} {
		f.waitCondition(n, &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	}
	first, exp := f.appToken("a")
	f.settle(300 * time.Millisecond)
	if n := f.sim.Stats().Total(tokenCalls); n != 1 {
		t.Fatalf("%d token calls for two apps of one key, want 1", n)
	}

	f.sim.SetFaults(simulator.Faults{Rate: 1, Status: http.StatusTooManyRequests, RetryAfter: 5 * time.Second})
	f.stepTo(exp)
	f.eventually("the throttled call at expiry", 10*time.Second, func() bool { return f.sim.Stats().Total(tokenCalls) >= 2 })
	f.settle(500 * time.Millisecond)
	f.step(2 * time.Second) // inside the Retry-After: any wake-up must still send nothing
	f.settle(300 * time.Millisecond)
	if n, early := f.sim.Stats().Total(tokenCalls), f.withinRetryAfter(); n != 2 || early != 0 {
		t.Fatalf("%d token calls (want 2), %d of them inside the Retry-After", n, early)
	}
	for _, n := range []string{"a", "b"} {
		out, _ := f.lastResult("ThingSpaceApp", n)
		if out.err != nil || out.res.RequeueAfter <= 0 || out.at.Add(out.res.RequeueAfter).After(exp.Add(7*time.Second)) {
			t.Fatalf("%s inside the Retry-After: result %+v, error %v; want a requeue to its end", n, out.res, out.err)
		}
		if c := f.condition(n, &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonUpstreamUnavailable {
			t.Fatalf("%s: Ready %s/%s (%s)", n, c.Status, c.Reason, c.Message)
		}
	}

	f.sim.SetFaults(simulator.Faults{})
	f.step(4 * time.Second)
	for _, n := range []string{"a", "b"} {
		f.waitCondition(n, &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	}
	if tok, _ := f.appToken("b"); tok == first || !f.sim.ValidBearer(tok) {
		t.Fatal("no new token after the Retry-After")
	}
	if n, early := f.sim.Stats().Total(tokenCalls), f.withinRetryAfter(); n != 3 || early != 0 {
		t.Fatalf("%d token calls (want 3), %d inside the Retry-After", n, early)
	}
}

// stormSim serves the fixture's simulator, throttling (503, Retry-After) the next n calls of a path.
type stormSim struct {
	mu    sync.Mutex
	storm map[string]int
	ra    time.Duration
	calls map[string][]time.Time // every call per path, throttled or not, at fake time
	url   string
}

func (f *fixture) stormy(ra time.Duration) *stormSim {
	g := &stormSim{storm: map[string]int{}, ra: ra, calls: map[string][]time.Time{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.calls[r.URL.Path] = append(g.calls[r.URL.Path], f.clk.Now())
		throttle := g.storm[r.URL.Path] > 0
		if throttle {
			g.storm[r.URL.Path]--
		}
		g.mu.Unlock()
		if throttle {
			if g.ra > 0 { // none: a 503 that names no wait
				w.Header().Set("Retry-After", strconv.Itoa(int(g.ra/time.Second)))
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"fault":{"code":"900800","message":"Message Throttled Out","description":"busy"}}`))
			return
		}
		f.sim.ServeHTTP(w, r)
	}))
	f.t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

func (g *stormSim) throttle(path string, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.storm[path] = n
}

func (g *stormSim) times(path string) []time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]time.Time(nil), g.calls[path]...)
}

const (
	tokenPath  = "/api/ts/v1/oauth2/token"
	revokePath = "/api/ts/v1/oauth2/revoke"
)

func (f *fixture) renewBeforeApp(name, url string) time.Time {
	f.app(name, "creds", func(a *v1alpha1.ThingSpaceApp) {
		a.Spec.Endpoint = url
		a.Spec.RenewBefore = &metav1.Duration{Duration: 10 * time.Minute}
	})
	f.waitCondition(name, &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	f.settle(300 * time.Millisecond)
	return f.tsApp(name).Status.RenewalTime.Time
}

// Issue 14, seed 33: a renewBefore rotation revoked the token, then its fetch met a storm, and the
// retries backed off past the Retry-After (1 s, 2 s, 4 s, ...) while the Secret held the dead token.
// After a revoke every retry comes at the end of the Retry-After, to the instant.
func TestRotationRetriesTheFetchAtTheRetryAfter(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.appCreds()
	g := f.stormy(3 * time.Second)
	plan := f.renewBeforeApp("a", g.url)
	first, _ := f.appToken("a")

	g.throttle(tokenPath, 4) // the revoke goes through; the next four token calls are throttled
	f.stepTo(plan)
	for i := 2; i <= 6; i++ {
		f.eventually("the next token call", 10*time.Second, func() bool { return len(g.times(tokenPath)) >= i })
		f.settle(300 * time.Millisecond)
		if i < 6 {
			out, _ := f.lastResult("ThingSpaceApp", "a")
			if out.err != nil || out.res.RequeueAfter != 3*time.Second {
				t.Fatalf("after throttled fetch %d: result %+v, error %v; want a retry at the Retry-After, 3s", i-1, out.res, out.err)
			}
			f.step(out.res.RequeueAfter)
		}
	}
	f.waitCondition("a", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	if tok, _ := f.appToken("a"); tok == first || !f.sim.ValidBearer(tok) {
		t.Fatal("no new token after the storm")
	}
	calls := g.times(tokenPath)
	if revokes := g.times(revokePath); len(revokes) != 1 || !revokes[0].Equal(plan) {
		t.Fatalf("revokes at %v, want one at %v", revokes, plan)
	}
	for i := 2; i < len(calls); i++ {
		if d := calls[i].Sub(calls[i-1]); d != 3*time.Second {
			t.Fatalf("token calls at %v: %v between calls %d and %d, want the Retry-After, 3s", calls, d, i-1, i)
		}
	}
}

// Issue 14: a rotation must not start while the key's last call failed: the revoke meets a storm (not
// applied), and at its retry slot the app does not try again (another revoke, and a fetch into the same
// storm, would risk a dead token while the old one is valid): it keeps the token and renews it plainly
// at expiry.
func TestRotationAfterAFailedCallWaitsForTheExpiry(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.appCreds()
	g := f.stormy(3 * time.Second)
	plan := f.renewBeforeApp("a", g.url)
	first, exp := f.appToken("a")

	g.throttle(revokePath, 1)
	f.stepTo(plan)
	f.eventually("the throttled revoke", 10*time.Second, func() bool { return len(g.times(revokePath)) >= 1 })
	f.settle(300 * time.Millisecond)
	f.step(3 * time.Second) // the Retry-After has passed: the failure's retry slot
	f.settle(500 * time.Millisecond)
	f.step(time.Minute)
	f.settle(300 * time.Millisecond)
	if n := len(g.times(revokePath)); n != 1 {
		t.Fatalf("%d revokes: the rotation was tried again after its call failed", n)
	}
	if tok, _ := f.appToken("a"); tok != first || !f.sim.ValidBearer(tok) {
		t.Fatal("the valid token was replaced or ended")
	}
	c := f.condition("a", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady)
	if c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonTokenValid || !strings.Contains(c.Message, "renewed when it expires") {
		t.Fatalf("Ready %s/%s: %s", c.Status, c.Reason, c.Message)
	}
	out, _ := f.lastResult("ThingSpaceApp", "a")
	if at := out.at.Add(out.res.RequeueAfter); out.err != nil || !at.Equal(exp) {
		t.Fatalf("requeue at %v (error %v), want the expiry %v", at, out.err, exp)
	}
	f.stepTo(exp)
	f.eventually("a new token at expiry", 10*time.Second, func() bool {
		tok, _ := f.appToken("a")
		return tok != first && f.sim.ValidBearer(tok)
	})
}
