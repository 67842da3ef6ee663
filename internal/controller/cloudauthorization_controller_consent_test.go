package controller

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Consent through the manager's OAuth2 callback (internal/callback), end to end on envtest.

func TestCloudConsentWritesTokensAndStateIsSingleUse(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	f.cloudAuth("photos", func(ca *v1alpha1.CloudAuthorization) { ca.Spec.DeviceID = "Android" })

	ca := f.waitCloud("photos", v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending, 10*time.Second)
	au, err := url.Parse(f.waitURL("photos", ""))
	must(t, err)
	q := au.Query()
	if q.Get("client_id") != f.key || q.Get("redirect_uri") != callbackURL || q.Get("response_type") != "code" ||
		q.Get("deviceid") != "Android" || len(q.Get("state")) < 40 {
		t.Fatalf("authorization URL query %v", q)
	}
	if c := meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("Ready before consent: %+v", c)
	}

	back := browserConsent(t, au.String())
	status, page := land(t, back)
	if status != http.StatusOK || !strings.Contains(page, "complete") {
		t.Fatalf("callback answered %d: %s", status, page)
	}
	ca = f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	if c := meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionAuthorized); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("Authorized after consent: %+v", c)
	}
	if ca.Status.AuthorizationURL != "" || ca.Status.ExpiresAt == nil || ca.Status.RenewalTime == nil {
		t.Fatalf("status after consent: %+v", ca.Status)
	}
	s := f.cloudSecret("photos-tokens")
	for _, k := range []string{KeyAccessToken, KeyRefreshToken, KeyTokenType, KeyExpiresAt} {
		if len(s.Data[k]) == 0 {
			t.Fatalf("Secret lacks %s: has %v", k, keys(s.Data))
		}
	}
	if !f.sim.ValidCloudAccessToken(string(s.Data[KeyAccessToken])) {
		t.Fatal("the access token in the Secret is not valid upstream")
	}
	if strings.Contains(page, string(s.Data[KeyAccessToken])) || strings.Contains(page, string(s.Data[KeyRefreshToken])) {
		t.Fatal("the callback page shows a token")
	}

	// The same callback again (a replay, a reload) is refused without a second exchange.
	exchanges := f.sim.CloudStats().CodeExchanges
	if status, _ := land(t, back); status != http.StatusBadRequest {
		t.Fatalf("replayed callback answered %d", status)
	}
	if got := f.sim.CloudStats(); got.CodeExchanges != exchanges || got.CodeReuses != 0 {
		t.Fatalf("replay reached Verizon: %+v", got)
	}
}

func TestCloudForgedStateIsRefusedWithoutExchange(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	f.cloudAuth("photos")
	au, err := url.Parse(f.waitURL("photos", ""))
	must(t, err)
	real := au.Query().Get("state")
	forged := []string{
		"",
		"not-a-state",
		strings.Repeat("A", len(real)),         // well formed, never issued
		real[:len(real)-1] + "x",               // one character off
		real + "A",                             // longer
		strings.ToUpper(real[:10]) + real[10:], // case matters
	}
	for _, s := range forged {
		if s == real {
			continue
		}
		status, _ := land(t, callbackURL+"?code=stolen-code&state="+url.QueryEscape(s))
		if status < 400 || status > 499 {
			t.Errorf("state %.12q answered %d, want 4xx", s, status)
		}
	}
	if got := f.sim.CloudStats(); got.CodeExchanges != 0 || got.InvalidGrants != 0 {
		t.Fatalf("a forged state reached the token endpoint: %+v", got)
	}
	if f.getCloud("photos").Status.AuthorizationURL == "" {
		t.Fatal("forged callbacks spent the real state")
	}
}

func TestCloudAccessDeniedOffersANewURL(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	f.cloudAuth("photos")
	first := f.waitURL("photos", "")
	f.sim.SetCloudDenyConsent(true)
	back := browserConsent(t, first)
	if !strings.Contains(back, "error=access_denied") {
		t.Fatalf("simulator did not deny: %s", back)
	}
	if status, _ := land(t, back); status != http.StatusOK {
		t.Fatalf("denied callback answered %d", status)
	}
	ca := f.waitCloud("photos", v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAccessDenied, 10*time.Second)
	if ca.Status.AuthorizationURL == "" || ca.Status.AuthorizationURL == first {
		t.Fatalf("no new authorization URL after denial: %q", ca.Status.AuthorizationURL)
	}
	// The new URL works.
	f.sim.SetCloudDenyConsent(false)
	if status, _ := land(t, browserConsent(t, ca.Status.AuthorizationURL)); status != http.StatusOK {
		t.Fatalf("consent after denial answered %d", status)
	}
	f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
}

func TestCloudExpiredStateIsReplaced(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	f.cloudAuth("photos")
	first := f.waitURL("photos", "")
	back := browserConsent(t, first)
	second := f.waitURL("photos", first) // the suite's state TTL is 3s
	if status, _ := land(t, back); status != http.StatusBadRequest {
		t.Fatalf("expired state answered %d", status)
	}
	if got := f.sim.CloudStats(); got.CodeExchanges != 0 {
		t.Fatalf("an expired state was exchanged: %+v", got)
	}
	if status, _ := land(t, browserConsent(t, second)); status != http.StatusOK {
		t.Fatalf("current state answered %d", status)
	}
}
