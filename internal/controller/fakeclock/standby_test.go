package fakeclock

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// The standby key set (issue 11 §1) on the fake clock: handovers alternate the key sets, each
// published token costs one token request, nothing is revoked, and the replaced token still works when
// its successor is published.

// standbyKey registers a second key set of the fixture's app with the simulator and stores it in the
// Secret "standby".
func (f *fixture) standbyKey() (string, string) {
	key, secret := "standby-"+f.key, "Standby-"+f.secret
	f.sim.SetApp(key, secret)
	f.credentials("standby", map[string]string{v1alpha1.CredentialsKeyKey: key, v1alpha1.CredentialsKeySecret: secret})
	return key, secret
}

// keyToken asks the simulator for key's token the way another holder of that key would.
func (f *fixture) keyToken(key, secret string) string {
	f.t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/api/ts/v1/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(key, secret)
	rec := httptest.NewRecorder()
	f.sim.ServeHTTP(rec, req)
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
		f.t.Fatalf("token request: %d", rec.Code)
	}
	return body.AccessToken
}

func withStandby(hb time.Duration) func(*v1alpha1.ThingSpaceApp) {
	return func(a *v1alpha1.ThingSpaceApp) {
		a.Spec.StandbyCredentialsSecretRef = &v1alpha1.LocalSecretReference{Name: "standby"}
		if hb > 0 {
			a.Spec.HandoverBefore = &metav1.Duration{Duration: hb}
		}
	}
}

// waitPublished waits until the app's Secret holds a token other than old, with status saying keySet
// is active, and returns it.
func (f *fixture) waitPublished(name, old, keySet string) (string, time.Time, *v1alpha1.ThingSpaceApp) {
	f.t.Helper()
	var tok string
	var exp time.Time
	var app *v1alpha1.ThingSpaceApp
	defer func() {
		if f.t.Failed() {
			f.t.Logf("status: %+v", f.tsApp(name).Status)
		}
	}()
	f.eventually(fmt.Sprintf("a new token from the %s key set", keySet), 20*time.Second, func() bool {
		tok, exp = f.appToken(name)
		app = f.tsApp(name)
		return tok != "" && tok != old && app.Status.ActiveKeySet == keySet && app.Status.ExpiresAt != nil &&
			app.Status.ExpiresAt.Time.Equal(exp.Truncate(time.Second))
	})
	return tok, exp, app
}

func overlap(app *v1alpha1.ThingSpaceApp) *metav1.Condition {
	return meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionOverlap)
}

func TestStandbyHandoversAlternateKeySetsWithOneRequestPerToken(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.appCreds()
	f.standbyKey()
	handedOver := func() float64 { return testutil.ToFloat64(metrics.AppHandovers.WithLabelValues("handed_over")) }
	counted := handedOver()
	f.app("a", "creds", withStandby(0))

	tok, exp, _ := f.waitPublished("a", "", v1alpha1.KeySetPrimary)
	f.settle(300 * time.Millisecond)
	want := 1
	sets := []string{v1alpha1.KeySetStandby, v1alpha1.KeySetPrimary, v1alpha1.KeySetStandby}
	for i, next := range sets {
		app := f.tsApp("a")
		c := overlap(app)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonHandoverScheduled {
			t.Fatalf("handover %d: Overlap = %+v, want True/HandoverScheduled", i+1, c)
		}
		at := exp.Add(-v1alpha1.DefaultHandoverBefore).Truncate(time.Second)
		if app.Status.NextHandoverTime == nil || !app.Status.NextHandoverTime.Time.Equal(at) ||
			app.Status.RenewalTime == nil || !app.Status.RenewalTime.Time.Equal(at) {
			t.Fatalf("handover %d: nextHandoverTime %v renewalTime %v, want both %v", i+1, app.Status.NextHandoverTime, app.Status.RenewalTime, at)
		}
		if got := f.sim.Stats().Total(tokenCalls); got != want {
			t.Fatalf("before handover %d: %d token calls, want %d", i+1, got, want)
		}
		// A second before the handover nothing happens.
		f.stepTo(at.Add(-time.Second))
		f.settle(200 * time.Millisecond)
		if got, _ := f.appToken("a"); got != tok {
			t.Fatalf("handover %d came early", i+1)
		}
		f.stepTo(at)
		var newTok string
		newTok, exp, _ = f.waitPublished("a", tok, next)
		want++
		// The replaced token still works at the upstream: nothing was revoked.
		if !f.sim.ValidBearer(tok) {
			t.Fatalf("handover %d: the replaced token is dead at the simulator", i+1)
		}
		if !f.sim.ValidBearer(newTok) {
			t.Fatalf("handover %d: the published token is not valid", i+1)
		}
		tok = newTok
		f.settle(300 * time.Millisecond)
	}
	if got := f.sim.Stats().Total(tokenCalls); got != want {
		t.Fatalf("%d token calls for %d published tokens, want one each", got, want)
	}
	if got := f.sim.Stats().Total(revokeCalls); got != 0 {
		t.Fatalf("%d revokes, want 0", got)
	}
	if got := f.events("a", v1alpha1.EventHandedOver); got != 3 {
		t.Fatalf("%d HandedOver events, want 3", got)
	}
	if got := handedOver() - counted; got != 3 {
		t.Fatalf("thingspace_app_handovers_total{result=handed_over} rose by %v, want 3", got)
	}
	if c := meta.FindStatusCondition(f.tsApp("a").Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("Ready %+v", c)
	}
}

// A refresh request with a standby key set hands over instead of revoking; a second one while the other
// key's token is still in its hour (it would not outlive the published one) revokes and reissues as
// without a standby.
func TestStandbyRefreshRequestPrefersAHandover(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.appCreds()
	f.standbyKey()
	f.app("a", "creds", withStandby(0))
	first, _, _ := f.waitPublished("a", "", v1alpha1.KeySetPrimary)
	f.settle(300 * time.Millisecond)
	request := func(v string) {
		a := f.tsApp("a")
		a.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: v}
		must(t, k8s.Update(context.Background(), a))
		f.eventually("the request observed", 20*time.Second, func() bool { return f.tsApp("a").Status.ObservedRefreshRequest == v })
	}
	f.step(10 * time.Minute)
	request("1")
	second, _, _ := f.waitPublished("a", first, v1alpha1.KeySetStandby)
	if n := f.sim.Stats().Total(revokeCalls); n != 0 || !f.sim.ValidBearer(first) {
		t.Fatalf("the handover revoked (%d revokes)", n)
	}
	f.step(time.Minute)
	request("2")
	third, _, _ := f.waitPublished("a", second, v1alpha1.KeySetStandby)
	if n := f.sim.Stats().Total(revokeCalls); n != 1 || f.sim.ValidBearer(second) || third == first {
		t.Fatalf("second request: %d revokes, the old token alive %v", n, f.sim.ValidBearer(second))
	}
}
