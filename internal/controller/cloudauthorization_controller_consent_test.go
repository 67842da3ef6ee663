package controller

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/consent"
)

// Consent through the manager's OAuth2 callback (internal/callback), end to end on envtest.

func TestCloudConsentWritesTokensAndStateIsSingleUse(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	f.cloudAuth("photos", func(ca *v1alpha1.CloudAuthorization) { ca.Spec.DeviceID = "Android" })

	f.waitCloud("photos", v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending, 10*time.Second)
	link := f.waitURL("photos", "")
	// The link starts at the operator, beside the callback; status names its Secret, never the link.
	if want := strings.TrimSuffix(callbackURL, "callback") + "start?state="; !strings.HasPrefix(link, want) {
		t.Fatalf("consent link %q, want it at %s…", link, want)
	}
	ca := f.getCloud("photos")
	c := meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionAuthorized)
	tok := consent.TokenOf(link)
	if ca.Status.ConsentSecretName != "photos-consent" || !strings.Contains(c.Message, "photos-consent") ||
		strings.Contains(fmt.Sprint(ca.Status), tok) || strings.Contains(fmt.Sprint(ca.Status), consent.State(tok)) {
		t.Fatalf("status %+v: want the consent Secret named, neither link nor state", ca.Status)
	}
	cs := f.cloudSecret("photos-consent")
	if metav1.GetControllerOf(cs) == nil || cs.Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedByValue || len(cs.Data) != 1 {
		t.Fatalf("consent Secret: owner %v, labels %v, keys %v", metav1.GetControllerOf(cs), cs.Labels, keys(cs.Data))
	}
	// The start redirects to Verizon with the derived state.
	resp, err := noFollow.Get(link)
	must(t, err)
	_ = resp.Body.Close()
	au, err := url.Parse(resp.Header.Get("Location"))
	must(t, err)
	q := au.Query()
	if resp.StatusCode != http.StatusSeeOther || q.Get("client_id") != f.key || q.Get("redirect_uri") != callbackURL || q.Get("response_type") != "code" ||
		q.Get("deviceid") != "Android" || q.Get("state") != consent.State(tok) {
		t.Fatalf("start answered %d, authorization URL query %v", resp.StatusCode, q)
	}
	if c := meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("Ready before consent: %+v", c)
	}

	back := browserConsent(t, au.String())
	// From another browser (no cookie) the same callback is refused and spends nothing.
	if status, _ := landElsewhere(t, back); status != http.StatusBadRequest {
		t.Fatalf("callback without the cookie answered %d", status)
	}
	if got := f.sim.CloudStats(); got.CodeExchanges != 0 {
		t.Fatalf("a callback without the cookie was exchanged: %+v", got)
	}
	status, page := land(t, back)
	if status != http.StatusOK || !strings.Contains(page, "complete") {
		t.Fatalf("callback answered %d: %s", status, page)
	}
	ca = f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	if c := meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionAuthorized); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("Authorized after consent: %+v", c)
	}
	if ca.Status.ConsentStateHash != "" || ca.Status.ExpiresAt == nil || ca.Status.RenewalTime == nil {
		t.Fatalf("status after consent: %+v", ca.Status)
	}
	s := f.cloudSecret("photos-grant")
	for _, k := range []string{KeyAccessToken, KeyRefreshToken, KeyTokenType, KeyExpiresAt} {
		if len(s.Data[k]) == 0 {
			t.Fatalf("grant Secret lacks %s: has %v", k, keys(s.Data))
		}
	}
	f.checkPublished("photos")
	// The consent is withdrawn: status names no Secret, and the Secret holds no link.
	deadline := time.Now().Add(10 * time.Second)
	for f.getCloud("photos").Status.ConsentSecretName != "" || len(f.cloudSecret("photos-consent").Data) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the consent link was not withdrawn once authorized")
		}
		time.Sleep(50 * time.Millisecond)
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
	real := consent.State(consent.TokenOf(f.waitURL("photos", "")))
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
	if f.getCloud("photos").Status.ConsentStateHash != consent.Hash(real) {
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
	f.waitCloud("photos", v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAccessDenied, 10*time.Second)
	// A new link at once (the denial's status change brings the pass, not the old link's expiry).
	second := f.waitURL("photos", first)
	// The new link works.
	f.sim.SetCloudDenyConsent(false)
	if status, _ := land(t, browserConsent(t, second)); status != http.StatusOK {
		t.Fatalf("consent after denial answered %d", status)
	}
	f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
}

// A denial replayed from another browser (no cookie) is refused and burns nothing: the link stays
// usable, and the person consents with it.
func TestCloudDenialWithoutTheCookieBurnsNothing(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	f.cloudAuth("photos")
	link := f.waitURL("photos", "")
	state := consent.State(consent.TokenOf(link))
	if status, _ := landElsewhere(t, callbackURL+"?error=access_denied&state="+url.QueryEscape(state)); status != http.StatusBadRequest {
		t.Fatalf("a denial without the cookie answered %d", status)
	}
	time.Sleep(500 * time.Millisecond)
	ca := f.getCloud("photos")
	if ca.Status.ConsentStateHash != consent.Hash(state) || meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionAuthorized).Reason != v1alpha1.ReasonAuthorizationPending {
		t.Fatalf("a denial without the cookie changed the consent: %+v", ca.Status)
	}
	if status, _ := land(t, browserConsent(t, link)); status != http.StatusOK {
		t.Fatalf("the link after a forged denial answered %d", status)
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
