package fakeclock

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

const tokenCalls = "POST /api/ts/v1/oauth2/token"

// The fixture itself: a ThingSpaceApp asks to be woken exactly at expiry, and stepping the fake clock
// there (not sleeping) brings exactly one new token.
func TestAppRenewsAtExpiryOnTheFakeClock(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.credentials("creds", map[string]string{v1alpha1.CredentialsKeyKey: f.key, v1alpha1.CredentialsKeySecret: f.secret})
	f.app("a", "creds")
	app := &v1alpha1.ThingSpaceApp{}
	f.waitCondition("a", app, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	first := string(f.secretData("a-token")[v1alpha1.SecretKeyAccessToken])
	f.settle(300 * time.Millisecond)

	out, ok := f.lastResult("ThingSpaceApp", "a")
	if !ok || out.err != nil {
		t.Fatalf("last reconcile: %+v", out)
	}
	if want := app.Status.ExpiresAt.Time; out.at.Add(out.res.RequeueAfter).Before(want) || out.at.Add(out.res.RequeueAfter).After(want.Add(time.Second)) {
		t.Fatalf("requeue at %v, want the expiry %v", out.at.Add(out.res.RequeueAfter), want)
	}
	if n := f.sim.Stats().Total(tokenCalls); n != 1 {
		t.Fatalf("%d token calls before expiry, want 1", n)
	}

	f.step(time.Hour + time.Second)
	f.eventually("a new token in the Secret", 20*time.Second, func() bool {
		tok := string(f.secretData("a-token")[v1alpha1.SecretKeyAccessToken])
		return tok != "" && tok != first
	})
	f.settle(300 * time.Millisecond)
	if n := f.sim.Stats().Total(tokenCalls); n != 2 {
		t.Fatalf("%d token calls after one lifetime, want 2", n)
	}
	f.waitCondition("a", app, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
}
