package fakeclock

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// Issue 14, seed 55: a renewBefore rotation revoked the token and its fetch failed with no wait named
// (a dropped connection, a 503 without Retry-After); the retry came after the failure's status write
// and a 100 ms backoff, all of it with a dead token in the Secret. The same pass asks again at once:
// the Secret holds the new token without the clock moving. A second failure backs off as before.
func TestRotationAsksAgainAtOnceAfterAFailureNamingNoWait(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.appCreds()
	g := f.stormy(0)
	plan := f.renewBeforeApp("a", g.url)
	first, _ := f.appToken("a")

	g.throttle(tokenPath, 1)
	f.stepTo(plan)
	f.eventually("a new token, the clock standing at the renewal", 10*time.Second, func() bool {
		tok, _ := f.appToken("a")
		return tok != first && f.sim.ValidBearer(tok)
	})
	calls := g.times(tokenPath)
	if len(calls) != 3 || !calls[1].Equal(plan) || !calls[2].Equal(plan) {
		t.Fatalf("token calls at %v: want the first, then two at the renewal %v", calls, plan)
	}
	f.waitCondition("a", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)

	// Twice in a row: the repeat fails too, and the next try waits for its backoff.
	f.settle(300 * time.Millisecond)
	second, _ := f.appToken("a")
	g.throttle(tokenPath, 2)
	a := f.tsApp("a")
	a.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "r1"}
	must(t, k8s.Update(context.Background(), a))
	f.eventually("the failed repeat", 10*time.Second, func() bool { return len(g.times(tokenPath)) >= 5 })
	f.settle(300 * time.Millisecond)
	if n := len(g.times(tokenPath)); n != 5 {
		t.Fatalf("%d token calls after two failures, want 5: the repeat is made once", n)
	}
	out, _ := f.lastResult("ThingSpaceApp", "a")
	if out.err != nil || out.res.RequeueAfter <= 0 {
		t.Fatalf("after the failed repeat: result %+v, error %v; want a backoff", out.res, out.err)
	}
	f.step(out.res.RequeueAfter)
	f.eventually("a new token after the backoff", 10*time.Second, func() bool {
		tok, _ := f.appToken("a")
		return tok != second && f.sim.ValidBearer(tok)
	})
}

// Chaos seed 66: each same-token poll in a token's last second moved status.renewalTime, a status
// write per poll, and one such write, slow, held the next poll back 1.2 s past the token's death. A
// renewalTime already due stays while the platform answers with the old token: the polls write
// nothing, and only the new token is recorded.
func TestSameTokenPollsWriteNoStatus(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.appCreds()
	f.directToken() // another client of the key, 800 ms ago: the app gets expires_in 3599, rounded down
	real := f.clk.Now().Add(time.Hour)
	f.step(800 * time.Millisecond)
	f.app("a", "creds")
	f.waitCondition("a", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	first, exp := f.appToken("a")
	f.settle(300 * time.Millisecond)

	before := f.api.snapshot()
	f.stepTo(exp)
	f.eventually("the poll at expiry", 10*time.Second, func() bool { return f.sim.Stats().Total(tokenCalls) >= 3 })
	f.settle(300 * time.Millisecond)
	if tok, _ := f.appToken("a"); tok != first {
		t.Fatal("the token changed before the platform's expiry")
	}
	if n := f.api.since(before).of("thingspaceapps", "status"); n != 0 {
		t.Fatalf("%d status writes for a same-token answer, want 0 (%v)", n, f.api.since(before))
	}
	f.stepTo(exp.Add(250 * time.Millisecond)) // the next poll, past the real expiry
	if !real.Before(f.clk.Now()) {
		t.Fatalf("the poll at %v is not past the real expiry %v", f.clk.Now(), real)
	}
	f.eventually("the new token", 10*time.Second, func() bool {
		tok, _ := f.appToken("a")
		return tok != first && f.sim.ValidBearer(tok)
	})
	f.settle(300 * time.Millisecond)
	if n := f.api.since(before).of("thingspaceapps", "status"); n != 1 {
		t.Fatalf("%d status writes from the expiry to the new token, want 1 (%v)", n, f.api.since(before))
	}
}
