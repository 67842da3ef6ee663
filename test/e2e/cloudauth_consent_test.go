package e2e

import (
	"crypto/rand"
	"encoding/base64"
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

// --- 1. Consent ---

// TestCloudConsent: the consent link, from the consent Secret, opened in a browser, starts at the
// manager, which binds the browser with a cookie and redirects to the simulator; the simulator sends the
// browser back to the callback, which answers a page without tokens; the grant Secret gets the refresh
// token, the workload's Secret only the access token, its type and expiry; the CloudAuthorization
// becomes Authorized and Ready, and the access token works at the simulator. One code, one exchange.
func TestCloudConsent(t *testing.T) {
	t.Parallel()
	e := newCloudEnv(t, cloudOpts{})
	ca := e.waitAuthorized(metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending, cloudWait)
	if hasCondition(ca, v1alpha1.ConditionReady, metav1.ConditionTrue, "") {
		t.Errorf("Ready=True before any consent: %s", describeCloud(ca))
	}
	link := e.waitURL()
	if want := strings.TrimSuffix(mgr.CallbackURL, "callback") + "start?state="; !strings.HasPrefix(link, want) {
		t.Errorf("the consent link does not start at the manager (%s…)", want)
	}
	ca = e.get()
	if ca.Status.ConsentSecretName != cloudConsentName || ca.Status.ConsentExpiresAt == nil || !ca.Status.ConsentExpiresAt.After(time.Now()) {
		t.Errorf("status names consent Secret %q, expiring %v; want %s, in the future", ca.Status.ConsentSecretName, ca.Status.ConsentExpiresAt, cloudConsentName)
	}
	if c := meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionAuthorized); c == nil || !strings.Contains(c.Message, cloudConsentName) || strings.Contains(c.Message, "state=") {
		t.Errorf("Authorized message %+v: want it to name the consent Secret, never the link", c)
	}
	if n := e.tokenRequests(0); n != 0 {
		t.Fatalf("%d token requests before consent, want none", n)
	}

	start := time.Now()
	b := e.browse(link)
	if b.authorize == nil || b.callback == nil {
		t.Fatalf("the start endpoint or the simulator did not redirect the browser (status %d)", b.status)
	}
	q := b.authorize.Query()
	switch {
	case !strings.HasPrefix(b.authorize.String(), e.sim.URL+"/cloud/1/oauth2/authorize?"):
		t.Errorf("the start endpoint redirected elsewhere than the endpoint's authorize URL: %s", b.authorize.Redacted())
	case q.Get("client_id") != e.key || q.Get("response_type") != "code":
		t.Errorf("authorization URL: client_id=%q response_type=%q, want %q and code", q.Get("client_id"), q.Get("response_type"), e.key)
	case q.Get("redirect_uri") != mgr.CallbackURL:
		t.Errorf("authorization URL: redirect_uri=%q, want the callbackURL %q verbatim", q.Get("redirect_uri"), mgr.CallbackURL)
	case q.Get("state") != consent.State(consent.TokenOf(link)):
		t.Errorf("authorization URL: the state is not the one derived from the link's token")
	}
	if got := b.callback.Scheme + "://" + b.callback.Host + b.callback.Path; got != mgr.CallbackURL {
		t.Errorf("the browser was sent to %s, want the manager's callback %s", got, mgr.CallbackURL)
	}
	if b.callback.Query().Get("state") != q.Get("state") {
		t.Errorf("the callback did not carry the state of the authorization URL")
	}
	if b.status != http.StatusOK {
		t.Fatalf("the callback page: status %d, want 200: %.300s", b.status, b.body)
	}
	if b.callback.Query().Get("code") == "" {
		t.Fatalf("the redirect carried no code")
	}
	ca = e.waitReady()
	t.Logf("Authorized and Ready %v after the browser opened the link", time.Since(start).Round(10*time.Millisecond))

	ct, s, _ := e.readSecret()
	e.checkNoTokenIn("the callback page", b, ct)
	if ct.refresh == "" {
		t.Errorf("the grant Secret %s holds no refresh token", cloudGrantName)
	}
	if len(ct.keys) != 3 || string(s.Data[v1alpha1.SecretKeyAccessToken]) != ct.access || string(s.Data[v1alpha1.SecretKeyExpiresAt]) != ct.expiresRaw ||
		string(s.Data[v1alpha1.SecretKeyTokenType]) != ct.tokenType {
		t.Errorf("the workload's Secret %s has keys %v, want access_token, token_type and expires_at as in the grant", cloudSecretName, ct.keys)
	}
	if ct.tokenType != "Bearer" {
		t.Errorf("token_type = %q, want Bearer", ct.tokenType)
	}
	if !strings.HasSuffix(ct.expiresRaw, "Z") || ct.expiresAt.Before(start.Add(time.Hour-time.Minute)) || ct.expiresAt.After(time.Now().Add(time.Hour+time.Minute)) {
		t.Errorf("expires_at = %q, want RFC 3339 UTC about an hour from now", ct.expiresRaw)
	}
	if ref := metav1.GetControllerOf(s); ref == nil || ref.UID != ca.UID || ref.Kind != "CloudAuthorization" {
		t.Errorf("the Secret's controller reference = %+v, want CloudAuthorization %s", ref, ca.UID)
	}
	if s.Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedByValue {
		t.Errorf("the Secret's label %s = %q", v1alpha1.ManagedByLabel, s.Labels[v1alpha1.ManagedByLabel])
	}
	if _, ok := ct.annotations[v1alpha1.RefreshStartedAnnotation]; ok {
		t.Errorf("the grant Secret carries %s after the consent", v1alpha1.RefreshStartedAnnotation)
	}
	if ca.Status.ConsentStateHash != "" {
		t.Errorf("a consent is still offered once Authorized")
	}
	if ca.Status.ExpiresAt == nil || !ca.Status.ExpiresAt.Time.Equal(ct.expiresAt.Truncate(time.Second)) {
		t.Errorf("status.expiresAt = %v, want the Secret's %v to the second", ca.Status.ExpiresAt, ct.expiresAt)
	}
	if !e.accountOK(ct.access) {
		t.Errorf("the Secret's access token is refused by GET /cloud/1/account")
	}

	time.Sleep(time.Second) // room for a stray call
	st := e.checkNoReuse("after the consent")
	if st.CodesIssued != 1 || st.CodeExchanges != 1 || st.Refreshes != 0 || st.LiveRefreshTokens != 1 {
		t.Errorf("cloud stats %+v, want one code issued and exchanged, no refresh, one live refresh token", st)
	}
	if n := e.tokenRequests(0); n != 1 {
		t.Errorf("%d token requests, want exactly 1 (the code exchange): %v", n, stats(t, e.sim))
	}
	// The recorded values make the leak scan mean something.
	if e.leaks.Count("a Cloud authorization code") != 1 || e.leaks.Count("a Cloud access token") != 1 || e.leaks.Count("a Cloud refresh token") != 1 {
		t.Errorf("the leak scan would miss values: codes %d, access tokens %d, refresh tokens %d recorded",
			e.leaks.Count("a Cloud authorization code"), e.leaks.Count("a Cloud access token"), e.leaks.Count("a Cloud refresh token"))
	}
}

// --- 4. Forged and replayed states ---

// TestCloudForgedAndReplayedState: the callback refuses, with a 4xx and no token request, a state it
// never issued (forged, tampered, missing, with a code or a denial) and a state already used (the
// same callback request replayed, or the same authorization URL opened again for a fresh code). A
// forgery does not use up the real state.
func TestCloudForgedAndReplayedState(t *testing.T) {
	t.Parallel()
	e := newCloudEnv(t, cloudOpts{})
	authURL := e.waitURL()
	real := consent.State(consent.TokenOf(authURL))
	tampered := []byte(real)
	tampered[len(tampered)/2] ^= 1 // still base64url, different state
	forged := func() string {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	code := "forged-code-" + randHex(16)
	e.add("a Cloud authorization code", code)
	for _, c := range []struct {
		what string
		q    url.Values
	}{
		{"an unknown well-formed state", url.Values{"code": {code}, "state": {forged()}}},
		{"a tampered state", url.Values{"code": {code}, "state": {string(tampered)}}},
		{"a malformed state", url.Values{"code": {code}, "state": {"not-a-state"}}},
		{"no state", url.Values{"code": {code}}},
		{"a forged denial", url.Values{"error": {"access_denied"}, "state": {forged()}}},
	} {
		status, body := callback(t, c.q)
		if status < 400 || status > 499 {
			t.Errorf("callback with %s: status %d, want 4xx", c.what, status)
		}
		if strings.Contains(body, code) {
			t.Errorf("callback with %s: the page echoes the code", c.what)
		}
	}
	if n := e.tokenRequests(0); n != 0 {
		t.Errorf("%d token requests after forged callbacks, want none: %v", n, stats(t, e.sim))
	}
	if ca := e.get(); ca.Status.ConsentStateHash != consent.Hash(real) || !hasCondition(ca, v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending) {
		t.Errorf("forged callbacks changed the status (consent unchanged: %v): %s", ca.Status.ConsentStateHash == consent.Hash(real), describeCloud(ca))
	}

	// The real consent still works.
	b := e.consent()
	tokens := e.tokens()
	exchanges := e.stats().CodeExchanges
	requests := e.tokenRequests(0)

	// The same callback request again.
	status, _ := callback(t, b.callback.Query())
	if status < 400 || status > 499 {
		t.Errorf("replayed callback: status %d, want 4xx", status)
	}
	// The same consent link opened again: the start endpoint refuses a spent consent.
	if again := e.browse(authURL); again.authorize != nil || again.status != http.StatusBadRequest {
		t.Errorf("the spent consent link: status %d, redirected %v; want 400 and no redirect", again.status, again.authorize != nil)
	}
	// Verizon's authorize URL opened again (it was in the browser's history): a fresh code, with a
	// spent state, and the browser's binding cookie is gone since the callback.
	again := e.browse(b.authorize.String())
	if again.callback == nil || again.callback.Query().Get("code") == "" {
		t.Fatalf("the simulator did not redirect a second consent with a code (status %d)", again.status)
	}
	if again.status < 400 || again.status > 499 {
		t.Errorf("a spent state with a fresh code: status %d, want 4xx", again.status)
	}
	e.checkNoTokenIn("the refused callback page", again, tokens)

	time.Sleep(500 * time.Millisecond) // room for a late exchange
	st := e.checkNoReuse("after the replays")
	if n := e.tokenRequests(0); n != requests || st.CodeExchanges != exchanges {
		t.Errorf("replays caused %d token requests (%d exchanges), want none: %+v", n-requests, st.CodeExchanges-exchanges, st)
	}
	if st.CodesIssued != 2 || st.CodeExchanges != 1 {
		t.Errorf("cloud stats %+v: want 2 codes issued, 1 exchanged", st)
	}
	ca := e.waitReady()
	if now := e.tokens(); now.access != tokens.access || now.refresh != tokens.refresh {
		t.Errorf("the replays changed the Secret's tokens")
	}
	if ca.Status.ConsentStateHash != "" {
		t.Errorf("the replays put a consent back in status")
	}
}

// --- 5. Denial ---

// TestCloudConsentDenied: a person refusing consent gives Authorized=False reason AccessDenied and a
// new, different consent link; the old one's state is spent; consenting with the new one works.
func TestCloudConsentDenied(t *testing.T) {
	t.Parallel()
	e := newCloudEnv(t, cloudOpts{})
	if err := e.sim.SetCloudDenyConsent(true); err != nil {
		t.Fatal(err)
	}
	first := e.waitURL()
	b := e.browse(first)
	if b.callback == nil || b.callback.Query().Get("error") != "access_denied" {
		t.Fatalf("the simulator did not redirect with error=access_denied (status %d)", b.status)
	}
	if b.status != http.StatusOK {
		t.Errorf("the callback page after a denial: status %d, want 200 (a page saying access was not granted): %.300s", b.status, b.body)
	}
	ca := e.waitAuthorized(metav1.ConditionFalse, v1alpha1.ReasonAccessDenied, cloudWait)
	if hasCondition(ca, v1alpha1.ConditionReady, metav1.ConditionTrue, "") {
		t.Errorf("Ready=True after a denial: %s", describeCloud(ca))
	}
	second := e.waitURL(first)
	if consent.TokenOf(second) == consent.TokenOf(first) {
		t.Errorf("the new consent link reuses the old token")
	}
	if st := e.stats(); st.Denials != 1 || e.tokenRequests(0) != 0 {
		t.Errorf("after the denial: %+v and %d token requests, want 1 denial and none", st, e.tokenRequests(0))
	}
	if _, _, ok := e.readSecret(); ok {
		t.Errorf("a Secret was written after a denial")
	}

	// The person changes their mind, but opens the old URL: its state is spent.
	if err := e.sim.SetCloudDenyConsent(false); err != nil {
		t.Fatal(err)
	}
	old := e.browse(first)
	if old.status < 400 || old.status > 499 {
		t.Errorf("the denied URL opened again: status %d, want 4xx", old.status)
	}
	time.Sleep(300 * time.Millisecond)
	if n := e.tokenRequests(0); n != 0 {
		t.Errorf("%d token requests for a spent state, want none", n)
	}
	if ca := e.get(); !hasCondition(ca, v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAccessDenied) ||
		ca.Status.ConsentStateHash != consent.Hash(consent.State(consent.TokenOf(second))) {
		t.Errorf("the spent state changed the status: %s", describeCloud(ca))
	}
	// The new URL works.
	ok := e.browse(second)
	if ok.status != http.StatusOK {
		t.Fatalf("consent at the new URL: status %d: %.300s", ok.status, ok.body)
	}
	e.waitReady()
	if !e.accountOK(e.tokens().access) {
		t.Errorf("the access token after consenting at the new URL is refused")
	}
	e.checkNoReuse("after the denial and the consent")
}
