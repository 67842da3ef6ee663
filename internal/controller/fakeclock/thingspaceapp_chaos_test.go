package fakeclock

import (
	"net/http"
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
