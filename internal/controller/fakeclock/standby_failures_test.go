package fakeclock

import (
	"context"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// The standby key set's failures never touch the published token or Ready: the Overlap condition says
// the overlap is lost, and the token is renewed at its expiry with the active key set.

func (f *fixture) waitOverlap(name string, status metav1.ConditionStatus, reason string) *v1alpha1.ThingSpaceApp {
	f.t.Helper()
	f.waitCondition(name, &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionOverlap, status, reason)
	return f.tsApp(name)
}

func (f *fixture) mustReady(name string) {
	f.t.Helper()
	if c := f.condition(name, &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonTokenValid {
		f.t.Fatalf("Ready = %+v, want True/TokenValid", c)
	}
}

func TestStandbyMissingRenewsAtExpiryWithTheActiveKey(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.appCreds()
	f.app("a", "creds", withStandby(0))
	tok, exp, _ := f.waitPublished("a", "", v1alpha1.KeySetPrimary)
	app := f.waitOverlap("a", metav1.ConditionFalse, v1alpha1.ReasonStandbyCredentialsNotFound)
	if app.Status.NextHandoverTime != nil || app.Status.RenewalTime == nil || !app.Status.RenewalTime.Time.Equal(exp.Truncate(time.Second)) {
		t.Fatalf("nextHandoverTime %v renewalTime %v, want none and the expiry %v", app.Status.NextHandoverTime, app.Status.RenewalTime, exp)
	}
	f.mustReady("a")
	// At the handover time nothing happens: there is no key to hand over to.
	f.stepTo(exp.Add(-v1alpha1.DefaultHandoverBefore))
	f.settle(300 * time.Millisecond)
	if got, _ := f.appToken("a"); got != tok || f.sim.Stats().Total(tokenCalls) != 1 {
		t.Fatalf("the token changed or was asked for before its expiry (%d calls)", f.sim.Stats().Total(tokenCalls))
	}
	// At expiry: renewed with the primary.
	f.stepTo(exp)
	tok, exp, _ = f.waitPublished("a", tok, v1alpha1.KeySetPrimary)
	f.settle(300 * time.Millisecond)
	if n := f.sim.Stats().Total(tokenCalls); n != 2 {
		t.Fatalf("%d token calls, want 2", n)
	}
	// The standby Secret appearing wakes the app (a watch, no clock step): a handover is planned.
	f.standbyKey()
	app = f.waitOverlap("a", metav1.ConditionTrue, v1alpha1.ReasonHandoverScheduled)
	if at := exp.Add(-v1alpha1.DefaultHandoverBefore).Truncate(time.Second); app.Status.NextHandoverTime == nil || !app.Status.NextHandoverTime.Time.Equal(at) {
		t.Fatalf("nextHandoverTime %v, want %v", app.Status.NextHandoverTime, at)
	}
	f.stepTo(app.Status.NextHandoverTime.Time)
	f.waitPublished("a", tok, v1alpha1.KeySetStandby)
	// Removing the standby removes the condition and the key set fields.
	a := f.tsApp("a")
	a.Spec.StandbyCredentialsSecretRef = nil
	must(t, k8s.Update(context.Background(), a))
	f.eventually("Overlap and activeKeySet gone", 20*time.Second, func() bool {
		a := f.tsApp("a")
		return overlap(a) == nil && a.Status.ActiveKeySet == "" && a.Status.NextHandoverTime == nil
	})
	if n := f.sim.Stats().Total(revokeCalls); n != 0 {
		t.Fatalf("%d revokes, want 0", n)
	}
}

func TestStandbyRejectedIsNotRetriedUntilItsSecretChanges(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.appCreds()
	key, secret := "standby-"+f.key, "Standby-"+f.secret
	f.sim.SetApp(key, secret)
	f.credentials("standby", map[string]string{v1alpha1.CredentialsKeyKey: key, v1alpha1.CredentialsKeySecret: "wrong-" + secret})
	f.app("a", "creds", withStandby(0))
	tok, exp, app := f.waitPublished("a", "", v1alpha1.KeySetPrimary)
	f.waitOverlap("a", metav1.ConditionTrue, v1alpha1.ReasonHandoverScheduled)
	f.stepTo(app.Status.NextHandoverTime.Time)
	app = f.waitOverlap("a", metav1.ConditionFalse, v1alpha1.ReasonStandbyCredentialsRejected)
	if app.Status.RejectedStandbyCredentialsVersion == "" || app.Status.NextHandoverTime != nil {
		t.Fatalf("status %+v: want the rejected version and no handover planned", app.Status)
	}
	if got, _ := f.appToken("a"); got != tok {
		t.Fatal("a refused standby touched the published token")
	}
	f.mustReady("a")
	refused := func() int { return f.sim.Stats().Count(tokenCalls, http.StatusUnauthorized) }
	if refused() != 1 {
		t.Fatalf("%d refused token calls, want 1", refused())
	}
	// Wake-ups (an annotation, the expiry) send nothing with the refused key set again.
	a := f.tsApp("a")
	a.Annotations = map[string]string{"poke": "1"}
	must(t, k8s.Update(context.Background(), a))
	f.stepTo(exp)
	tok, exp, _ = f.waitPublished("a", tok, v1alpha1.KeySetPrimary)
	f.stepTo(exp.Add(-time.Minute))
	f.settle(300 * time.Millisecond)
	if refused() != 1 {
		t.Fatalf("%d refused token calls after the expiry and past the next handover time, want 1", refused())
	}
	f.waitOverlap("a", metav1.ConditionFalse, v1alpha1.ReasonStandbyCredentialsRejected)
	// The Secret fixed: a handover is planned again and happens.
	sb := &corev1.Secret{}
	f.get("standby", sb)
	sb.StringData = map[string]string{v1alpha1.CredentialsKeySecret: secret}
	must(t, k8s.Update(context.Background(), sb))
	app = f.waitOverlap("a", metav1.ConditionTrue, v1alpha1.ReasonHandoverScheduled)
	if app.Status.RejectedStandbyCredentialsVersion != "" {
		t.Fatalf("rejected version %q kept after the Secret changed", app.Status.RejectedStandbyCredentialsVersion)
	}
	f.waitPublished("a", tok, v1alpha1.KeySetStandby) // the handover time has passed already
	if refused() != 1 {
		t.Fatalf("%d refused token calls, want 1", refused())
	}
}

func TestStandbyUnavailableBacksOffUntilExpiry(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.appCreds()
	f.standbyKey()
	f.app("a", "creds", withStandby(0))
	tok, exp, app := f.waitPublished("a", "", v1alpha1.KeySetPrimary)
	f.waitOverlap("a", metav1.ConditionTrue, v1alpha1.ReasonHandoverScheduled)
	f.sim.SetFaults(simulator.Faults{Rate: 1, Status: http.StatusServiceUnavailable})
	f.stepTo(app.Status.NextHandoverTime.Time)
	app = f.waitOverlap("a", metav1.ConditionFalse, v1alpha1.ReasonStandbyUnavailable)
	f.mustReady("a")
	retry := app.Status.RenewalTime
	if retry == nil || !retry.After(f.clk.Now()) || !retry.Before(&metav1.Time{Time: exp}) {
		t.Fatalf("retry at %v, want after now and before the expiry %v", retry, exp)
	}
	if got, _ := f.appToken("a"); got != tok {
		t.Fatal("a failed handover touched the published token")
	}
	// Failing until the expiry: the retries stay before it, then the primary renews.
	retries := 0
	for ; retries < 30; retries++ {
		at := f.tsApp("a").Status.RenewalTime.Time
		if !at.Before(exp.Truncate(time.Second)) {
			break
		}
		f.stepTo(at)
		f.settle(200 * time.Millisecond)
		if r := f.tsApp("a").Status.RenewalTime; r == nil || r.After(exp.Truncate(time.Second).Add(time.Second)) {
			t.Fatalf("retry planned at %v, after the expiry %v", r, exp)
		}
		if got, _ := f.appToken("a"); got != tok {
			t.Fatal("a failed handover touched the published token")
		}
		f.mustReady("a")
	}
	if retries < 2 || retries == 30 {
		t.Fatalf("%d retries before the expiry", retries)
	}
	f.sim.SetFaults(simulator.Faults{})
	f.stepTo(exp.Add(time.Minute)) // whatever backoff the expiry's failure left
	f.waitPublished("a", tok, v1alpha1.KeySetPrimary)
	f.waitOverlap("a", metav1.ConditionTrue, v1alpha1.ReasonHandoverScheduled)
}

// Another holder of the standby key fetched its token of the hour shortly before: the handover would
// not outlive the published token, so it is retried when that token expired.
func TestStandbyTokenOfTheHourDefersTheHandover(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.appCreds()
	key, secret := f.standbyKey()
	other := f.keyToken(key, secret)
	f.step(2 * time.Second)
	f.app("a", "creds", withStandby(0))
	tok, _, app := f.waitPublished("a", "", v1alpha1.KeySetPrimary)
	f.stepTo(app.Status.NextHandoverTime.Time)
	app = f.waitOverlap("a", metav1.ConditionFalse, v1alpha1.ReasonStandbyUnavailable)
	if got, _ := f.appToken("a"); got != tok || other == tok {
		t.Fatal("the other holder's token was published")
	}
	next := app.Status.NextHandoverTime
	if next == nil || !next.Time.Before(app.Status.ExpiresAt.Time) {
		t.Fatalf("nextHandoverTime %v, want before the expiry %v", next, app.Status.ExpiresAt)
	}
	f.stepTo(next.Time)
	got, _, _ := f.waitPublished("a", tok, v1alpha1.KeySetStandby)
	if got == other || !f.sim.ValidBearer(tok) {
		t.Fatal("the handover published the other holder's token, or the replaced one is dead")
	}
}

// A short lifetime clamps handoverBefore to a third of it, so the key handed back to has a fresh token.
func TestStandbyHandoverBeforeClampedForAShortLifetime(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: 9 * time.Minute})
	f.appCreds()
	f.standbyKey()
	f.app("a", "creds", withStandby(0))
	tok, exp, app := f.waitPublished("a", "", v1alpha1.KeySetPrimary)
	for i, next := range []string{v1alpha1.KeySetStandby, v1alpha1.KeySetPrimary} {
		if at := exp.Add(-3 * time.Minute).Truncate(time.Second); app.Status.NextHandoverTime == nil || !app.Status.NextHandoverTime.Time.Equal(at) {
			t.Fatalf("handover %d at %v, want %v (a third of 9m)", i+1, app.Status.NextHandoverTime, at)
		}
		f.stepTo(app.Status.NextHandoverTime.Time)
		tok, exp, _ = f.waitPublished("a", tok, next)
		f.settle(300 * time.Millisecond)
		app = f.tsApp("a")
	}
	if n := f.sim.Stats().Total(tokenCalls); n != 3 {
		t.Fatalf("%d token calls for 3 tokens", n)
	}
}

// Another holder fetched the standby key's token a minute after the app's: it would outlive the
// published token by less than handoverBefore, so there is no handover for this token (asked once, not
// again on later wake-ups) and it is renewed at its expiry with the primary; the next one hands over.
func TestStandbyGivesUpWhenTheOtherTokenOutlivesByTooLittle(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.appCreds()
	key, secret := f.standbyKey()
	f.app("a", "creds", withStandby(0))
	tok, exp, app := f.waitPublished("a", "", v1alpha1.KeySetPrimary)
	f.step(time.Minute)
	f.keyToken(key, secret)
	f.stepTo(app.Status.NextHandoverTime.Time)
	app = f.waitOverlap("a", metav1.ConditionFalse, v1alpha1.ReasonStandbyUnavailable)
	f.settle(300 * time.Millisecond)
	calls := f.sim.Stats().Total(tokenCalls)
	if app.Status.NextHandoverTime != nil || !app.Status.RenewalTime.Time.Equal(exp.Truncate(time.Second)) {
		t.Fatalf("nextHandoverTime %v renewalTime %v, want none and the expiry", app.Status.NextHandoverTime, app.Status.RenewalTime)
	}
	a := f.tsApp("a")
	a.Annotations = map[string]string{"poke": "1"}
	must(t, k8s.Update(context.Background(), a))
	f.step(time.Minute)
	f.settle(300 * time.Millisecond)
	if got, _ := f.appToken("a"); got != tok || f.sim.Stats().Total(tokenCalls) != calls {
		t.Fatalf("asked again after giving up (%d calls, was %d)", f.sim.Stats().Total(tokenCalls), calls)
	}
	f.mustReady("a")
	f.stepTo(exp)
	tok, _, _ = f.waitPublished("a", tok, v1alpha1.KeySetPrimary)
	app = f.waitOverlap("a", metav1.ConditionTrue, v1alpha1.ReasonHandoverScheduled)
	f.stepTo(app.Status.NextHandoverTime.Time)
	f.waitPublished("a", tok, v1alpha1.KeySetStandby)
}
