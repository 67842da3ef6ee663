package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// CloudAuthorization end to end: a person's consent in a browser (played by an http.Client following
// the simulator's redirect to the manager's callback), rotating refresh tokens, and the promise that a
// refresh token is never sent twice, across a SIGTERM or a SIGKILL of the manager in the middle of a
// refresh. Every count comes from the simulator's admin stats; every token is checked against the
// simulator's protected GET /cloud/1/account.

const (
	// keyRefreshToken is the data key of the refresh token in a CloudAuthorization's Secret.
	keyRefreshToken = v1alpha1.SecretKeyRefreshToken
	// cloudName and cloudSecretName are the CloudAuthorization of a cloud test and the Secret it writes.
	cloudName       = "ca"
	cloudSecretName = "ca-tokens"
	// inFlightBound is how long after its refresh-started-at marker a refresh counts as interrupted.
	inFlightBound = upstreamTimeout + 5*time.Second
	// cloudWait bounds the waits for a reconcile outcome: generous, for a loaded machine.
	cloudWait = 20 * time.Second
)

// cloudEnv is one Cloud test's own simulator (its counts are the test's alone) with one Verizon Cloud
// app registered with the manager's callback URL, a namespace, the app's credentials Secret "creds" and
// a CloudAuthorization "ca" writing Secret "ca-tokens".
type cloudEnv struct {
	t           *testing.T
	sim         *harness.Sim
	ns          string
	key, secret string
	// leaks holds this test's codes, tokens and client secret; they also go to the suite's check.
	leaks harness.Sensitive
	// scanned is set once scanLeaks ran, so the cleanup does not report the same findings again.
	scanned bool
}

// cloudOpts shape a cloud test's simulator and CloudAuthorization.
type cloudOpts struct {
	// access is the simulator's access token lifetime; zero means an hour.
	access time.Duration
	// code is the simulator's authorization code lifetime; zero means its default (5m).
	code time.Duration
	// credsSecret is the client secret put in the credentials Secret; empty means the right one.
	credsSecret string
	// mutate changes the CloudAuthorization before it is created.
	mutate func(*v1alpha1.CloudAuthorization)
}

// newCloudEnv starts the simulator, the namespace, the credentials and the CloudAuthorization. A
// cleanup scans the manager's log, the namespace's Events and the CloudAuthorization's status for this
// test's sensitive values.
func newCloudEnv(t *testing.T, o cloudOpts) *cloudEnv {
	t.Helper()
	e := &cloudEnv{t: t, key: "cloud-" + randHex(8), secret: "cloud-secret-" + randHex(16)}
	e.leaks.AddCredentials(e.key, e.secret)
	sensitive.AddCredentials(e.key, e.secret)
	if o.access == 0 {
		o.access = time.Hour
	}
	e.sim = startSim(t, harness.SimConfig{
		CloudApps:                map[string]harness.CloudApp{e.key: {Secret: e.secret, CallbackURL: mgr.CallbackURL}},
		CloudAccessTokenLifetime: o.access,
		CloudCodeLifetime:        o.code,
	})
	e.ns = newNamespace(t)
	// Runs before newNamespace's cleanup deletes the CloudAuthorization.
	t.Cleanup(e.scanLeaks)
	credsSecret := e.secret
	if o.credsSecret != "" {
		credsSecret = o.credsSecret
		e.leaks.AddCredentials(e.key, credsSecret)
	}
	createCredentials(t, e.ns, "creds", e.key, credsSecret)
	ca := &v1alpha1.CloudAuthorization{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: cloudName},
		Spec: v1alpha1.CloudAuthorizationSpec{
			Endpoint:             e.sim.URL + "/cloud/1",
			CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: "creds"},
			CallbackURL:          mgr.CallbackURL,
			SecretName:           cloudSecretName,
		},
	}
	if o.mutate != nil {
		o.mutate(ca)
	}
	if err := k8s.Create(t.Context(), ca); err != nil {
		t.Fatalf("create CloudAuthorization: %v", err)
	}
	return e
}

// add records a sensitive value for this test's scan and the suite's.
func (e *cloudEnv) add(what, v string) {
	e.leaks.Add(what, v)
	sensitive.Add(what, v)
}

// headerShapes are the findings of Sensitive.Scan that match a shape rather than a recorded value.
var headerShapes = map[string]bool{"an Authorization header": true, "a Basic credential": true, "a Bearer credential": true}

// scanLeaks fails the test when one of its codes, tokens or its client secret is in the manager's log,
// an Event of its namespace or its CloudAuthorization's status. Header shapes in the log are left to the
// suite's check (the log is shared); in this namespace's Events and status they are this test's.
func (e *cloudEnv) scanLeaks() {
	if e.scanned {
		return
	}
	e.scanned = true
	t := e.t
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var found []harness.Leak
	for _, l := range e.leaks.Scan("the manager log", mgr.Logs()) {
		if !headerShapes[l.What] {
			found = append(found, l)
		}
	}
	events := &corev1.EventList{}
	if err := k8s.List(ctx, events, client.InNamespace(e.ns)); err != nil {
		t.Errorf("leak scan: list events: %v", err)
	}
	for _, ev := range events.Items {
		b, _ := json.Marshal(ev)
		found = append(found, e.leaks.Scan(fmt.Sprintf("Event %s (%s)", ev.Name, ev.Reason), string(b))...)
	}
	ca := &v1alpha1.CloudAuthorization{}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: cloudName}, ca); err == nil {
		b, _ := json.Marshal(ca.Status)
		found = append(found, e.leaks.Scan("the CloudAuthorization's status", string(b))...)
	}
	for _, l := range found {
		t.Errorf("leak: %s", l)
	}
}

func (e *cloudEnv) get() *v1alpha1.CloudAuthorization {
	e.t.Helper()
	ca := &v1alpha1.CloudAuthorization{}
	if err := k8s.Get(e.t.Context(), types.NamespacedName{Namespace: e.ns, Name: cloudName}, ca); err != nil {
		e.t.Fatalf("get CloudAuthorization: %v", err)
	}
	return ca
}

// wait polls the CloudAuthorization until ok holds.
func (e *cloudEnv) wait(timeout time.Duration, what string, ok func(*v1alpha1.CloudAuthorization) bool) *v1alpha1.CloudAuthorization {
	e.t.Helper()
	var last *v1alpha1.CloudAuthorization
	err := harness.WaitFor(e.t.Context(), timeout, 50*time.Millisecond, func() (bool, error) {
		ca := &v1alpha1.CloudAuthorization{}
		if err := k8s.Get(e.t.Context(), types.NamespacedName{Namespace: e.ns, Name: cloudName}, ca); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		last = ca
		return ok(ca), nil
	})
	if err != nil {
		e.t.Fatalf("CloudAuthorization %s/%s: waiting for %s: %v; last status: %s", e.ns, cloudName, what, err, describeCloud(last))
	}
	return last
}

// hasCondition reports whether ca has condition typ with status and reason (any reason when empty) for
// its current generation.
func hasCondition(ca *v1alpha1.CloudAuthorization, typ string, status metav1.ConditionStatus, reason string) bool {
	c := meta.FindStatusCondition(ca.Status.Conditions, typ)
	return c != nil && c.Status == status && (reason == "" || c.Reason == reason) && c.ObservedGeneration == ca.Generation
}

// waitAuthorized waits until Authorized has status and reason.
func (e *cloudEnv) waitAuthorized(status metav1.ConditionStatus, reason string, timeout time.Duration) *v1alpha1.CloudAuthorization {
	e.t.Helper()
	return e.wait(timeout, fmt.Sprintf("Authorized=%s reason %s", status, reason), func(ca *v1alpha1.CloudAuthorization) bool {
		return hasCondition(ca, v1alpha1.ConditionAuthorized, status, reason)
	})
}

// waitReady waits until Authorized=True (Granted) and Ready=True (TokenValid).
func (e *cloudEnv) waitReady() *v1alpha1.CloudAuthorization {
	e.t.Helper()
	return e.wait(cloudWait, "Authorized=True Granted and Ready=True TokenValid", func(ca *v1alpha1.CloudAuthorization) bool {
		return hasCondition(ca, v1alpha1.ConditionAuthorized, metav1.ConditionTrue, v1alpha1.ReasonGranted) &&
			hasCondition(ca, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	})
}

// waitURL waits for an authorization URL in status other than any of not, and returns it.
func (e *cloudEnv) waitURL(not ...string) string {
	e.t.Helper()
	ca := e.wait(cloudWait, "a new status.authorizationURL", func(ca *v1alpha1.CloudAuthorization) bool {
		u := ca.Status.AuthorizationURL
		if u == "" {
			return false
		}
		for _, n := range not {
			if u == n {
				return false
			}
		}
		return true
	})
	return ca.Status.AuthorizationURL
}

func describeCloud(ca *v1alpha1.CloudAuthorization) string {
	if ca == nil {
		return "(not found)"
	}
	var b strings.Builder
	for _, typ := range []string{v1alpha1.ConditionAuthorized, v1alpha1.ConditionReady} {
		c := meta.FindStatusCondition(ca.Status.Conditions, typ)
		if c == nil {
			fmt.Fprintf(&b, "no %s condition; ", typ)
			continue
		}
		fmt.Fprintf(&b, "%s=%s reason=%s message=%q observedGeneration=%d/%d; ", typ, c.Status, c.Reason, c.Message, c.ObservedGeneration, ca.Generation)
	}
	fmt.Fprintf(&b, "authorizationURL set=%v failedRefreshAttempts=%d observedRefreshRequest=%q",
		ca.Status.AuthorizationURL != "", ca.Status.FailedRefreshAttempts, ca.Status.ObservedRefreshRequest)
	return b.String()
}

// browsed is what a browser opening an authorization URL saw.
type browsed struct {
	// callback is the manager URL the simulator redirected to (with code or error, and state); nil when
	// there was no redirect.
	callback *url.URL
	// status and body are the final page's.
	status int
	body   string
}

// browse opens u as a person's browser would: it follows the simulator's 302 to the manager's callback
// and reads the page. The authorization code in the redirect is recorded as sensitive.
func (e *cloudEnv) browse(u string) browsed {
	e.t.Helper()
	var out browsed
	browser := &http.Client{
		Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > 3 {
				return errors.New("too many redirects")
			}
			out.callback = req.URL
			e.add("a Cloud authorization code", req.URL.Query().Get("code"))
			return nil
		},
	}
	req, err := http.NewRequestWithContext(e.t.Context(), http.MethodGet, u, nil)
	if err != nil {
		e.t.Fatalf("browse: %v", err)
	}
	resp, err := browser.Do(req)
	if err != nil {
		// The error quotes the URL, which may hold a code: say less.
		e.t.Fatalf("browse: the request failed (redirected to the callback: %v)", out.callback != nil)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	out.status, out.body = resp.StatusCode, string(b)
	return out
}

// callback sends a GET to the manager's callback with q, as a browser (or an attacker) would, and
// returns the status and page.
func callback(t *testing.T, q url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, mgr.CallbackURL+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET the callback: request failed")
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// cloudTokens is what the CloudAuthorization's Secret holds.
type cloudTokens struct {
	access, refresh, tokenType, expiresRaw string
	expiresAt                              time.Time
	annotations                            map[string]string
	keys                                   []string
}

// readSecret reads the Secret the CloudAuthorization writes and records its tokens as sensitive; ok is false
// when it does not exist.
func (e *cloudEnv) readSecret() (cloudTokens, *corev1.Secret, bool) {
	e.t.Helper()
	s := &corev1.Secret{}
	if err := k8s.Get(e.t.Context(), types.NamespacedName{Namespace: e.ns, Name: cloudSecretName}, s); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return cloudTokens{}, nil, false
		}
		e.t.Fatalf("get Secret %s: %v", cloudSecretName, err)
	}
	ct := cloudTokens{
		access:      string(s.Data[harness.KeyAccessToken]),
		refresh:     string(s.Data[keyRefreshToken]),
		tokenType:   string(s.Data[harness.KeyTokenType]),
		expiresRaw:  string(s.Data[harness.KeyExpiresAt]),
		annotations: s.Annotations,
	}
	for k := range s.Data {
		ct.keys = append(ct.keys, k)
	}
	ct.expiresAt, _ = time.Parse(time.RFC3339, ct.expiresRaw)
	e.add("a Cloud access token", ct.access)
	e.add("a Cloud refresh token", ct.refresh)
	return ct, s, true
}

// tokens reads the Secret, which must hold an access token and a refresh token.
func (e *cloudEnv) tokens() cloudTokens {
	e.t.Helper()
	ct, _, ok := e.readSecret()
	if !ok || ct.access == "" || ct.refresh == "" {
		e.t.Fatalf("Secret %s: exists=%v, access token present=%v, refresh token present=%v", cloudSecretName, ok, ct.access != "", ct.refresh != "")
	}
	return ct
}

func (e *cloudEnv) stats() harness.CloudStats {
	e.t.Helper()
	st, err := e.sim.CloudStats()
	if err != nil {
		e.t.Fatalf("simulator cloud stats: %v", err)
	}
	return st
}

// tokenRequests is how many requests reached the simulator's token endpoint (any status; 0 = all).
func (e *cloudEnv) tokenRequests(status int) int {
	e.t.Helper()
	return calls(e.t, e.sim, harness.RouteCloudToken, status)
}

// accountOK reports whether the simulator accepts token on GET /cloud/1/account.
func (e *cloudEnv) accountOK(token string) bool {
	e.t.Helper()
	ok, err := e.sim.CloudAccountOK(e.t.Context(), token)
	if err != nil {
		e.t.Fatalf("GET /cloud/1/account: %v", err)
	}
	return ok
}

// requestRefresh sets the refresh-requested annotation to value.
func (e *cloudEnv) requestRefresh(value string) {
	e.t.Helper()
	ca := e.get()
	patch := client.MergeFrom(ca.DeepCopy())
	if ca.Annotations == nil {
		ca.Annotations = map[string]string{}
	}
	ca.Annotations[v1alpha1.RefreshRequestedAnnotation] = value
	if err := k8s.Patch(e.t.Context(), ca, patch); err != nil {
		e.t.Fatalf("annotate %s: %v", cloudName, err)
	}
}

// consent opens the current authorization URL, checks the page, and waits until the CloudAuthorization
// is Authorized and Ready with tokens in the Secret. It returns what the browser saw.
func (e *cloudEnv) consent() browsed {
	e.t.Helper()
	b := e.browse(e.waitURL())
	if b.callback == nil || b.callback.Query().Get("code") == "" {
		e.t.Fatalf("consent: the simulator did not redirect to the callback with a code (page status %d)", b.status)
	}
	if b.status != http.StatusOK {
		e.t.Fatalf("consent: the callback answered %d, want 200: %.300s; %s", b.status, b.body, describeCloud(e.get()))
	}
	e.waitReady()
	e.tokens()
	return b
}

// checkNoTokenIn fails when the page holds the code it was reached with or a token of the Secret.
func (e *cloudEnv) checkNoTokenIn(what string, b browsed, ct cloudTokens) {
	e.t.Helper()
	if b.callback != nil {
		if code := b.callback.Query().Get("code"); code != "" && strings.Contains(b.body, code) {
			e.t.Errorf("%s: the page holds the authorization code", what)
		}
	}
	for name, v := range map[string]string{"access token": ct.access, "refresh token": ct.refresh, "client secret": e.secret} {
		if v != "" && strings.Contains(b.body, v) {
			e.t.Errorf("%s: the page holds the %s", what, name)
		}
	}
}

// events returns the Events about the CloudAuthorization with reason.
func (e *cloudEnv) events(reason string) []eventsv1.Event {
	e.t.Helper()
	list := &eventsv1.EventList{}
	if err := k8s.List(e.t.Context(), list, client.InNamespace(e.ns)); err != nil {
		e.t.Fatalf("list events: %v", err)
	}
	var out []eventsv1.Event
	for _, ev := range list.Items {
		if ev.Regarding.Kind == "CloudAuthorization" && ev.Regarding.Name == cloudName && ev.Reason == reason {
			out = append(out, ev)
		}
	}
	return out
}

// waitRefreshes waits until the simulator has processed want successful refreshes in total.
func (e *cloudEnv) waitRefreshes(want int, timeout time.Duration) {
	e.t.Helper()
	err := harness.WaitFor(e.t.Context(), timeout, 20*time.Millisecond, func() (bool, error) {
		st, err := e.sim.CloudStats()
		return err == nil && st.Refreshes >= want, err
	})
	if err != nil {
		e.t.Fatalf("waiting for %d refreshes at the simulator: %v; stats %+v; %s", want, err, e.stats(), describeCloud(e.get()))
	}
}

// checkNoReuse fails when a refresh token or code was presented twice, or any grant was refused.
func (e *cloudEnv) checkNoReuse(when string) harness.CloudStats {
	e.t.Helper()
	st := e.stats()
	if st.RefreshTokenReuses != 0 || st.CodeReuses != 0 || st.InvalidGrants != 0 {
		e.t.Errorf("%s: %d refresh-token reuses, %d code reuses, %d invalid_grant answers, want none: %+v",
			when, st.RefreshTokenReuses, st.CodeReuses, st.InvalidGrants, st)
	}
	return st
}

// --- 1. Consent ---

// TestCloudConsent: the authorization URL in status, opened in a browser, lands on the manager's
// callback, which answers a page without tokens; the Secret gets the four keys, the CloudAuthorization
// becomes Authorized and Ready, and the access token works at the simulator. One code, one exchange.
func TestCloudConsent(t *testing.T) {
	t.Parallel()
	e := newCloudEnv(t, cloudOpts{})
	ca := e.waitAuthorized(metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending, cloudWait)
	if hasCondition(ca, v1alpha1.ConditionReady, metav1.ConditionTrue, "") {
		t.Errorf("Ready=True before any consent: %s", describeCloud(ca))
	}
	authURL := e.waitURL()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatalf("status.authorizationURL does not parse: %v", err)
	}
	q := u.Query()
	switch {
	case !strings.HasPrefix(authURL, e.sim.URL+"/cloud/1/oauth2/authorize?"):
		t.Errorf("status.authorizationURL is not the endpoint's authorize URL: %s", u.Redacted())
	case q.Get("client_id") != e.key || q.Get("response_type") != "code":
		t.Errorf("authorization URL: client_id=%q response_type=%q, want %q and code", q.Get("client_id"), q.Get("response_type"), e.key)
	case q.Get("redirect_uri") != mgr.CallbackURL:
		t.Errorf("authorization URL: redirect_uri=%q, want the callbackURL %q verbatim", q.Get("redirect_uri"), mgr.CallbackURL)
	case len(q.Get("state")) < 43: // 256 bits in base64url
		t.Errorf("authorization URL: state of %d characters, want an unguessable one (>= 43)", len(q.Get("state")))
	}
	if exp := e.get().Status.AuthorizationURLExpiresAt; exp == nil || !exp.After(time.Now()) {
		t.Errorf("status.authorizationURLExpiresAt = %v, want in the future", exp)
	}
	if n := e.tokenRequests(0); n != 0 {
		t.Fatalf("%d token requests before consent, want none", n)
	}

	start := time.Now()
	b := e.browse(authURL)
	if b.callback == nil {
		t.Fatalf("the simulator did not redirect the browser (status %d)", b.status)
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
	t.Logf("Authorized and Ready %v after the browser opened the URL", time.Since(start).Round(10*time.Millisecond))

	ct, s, _ := e.readSecret()
	e.checkNoTokenIn("the callback page", b, ct)
	for _, k := range []string{harness.KeyAccessToken, keyRefreshToken, harness.KeyTokenType, harness.KeyExpiresAt} {
		if len(s.Data[k]) == 0 {
			t.Errorf("Secret %s has no %s (keys %v)", cloudSecretName, k, ct.keys)
		}
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
	if _, ok := s.Annotations[v1alpha1.RefreshStartedAnnotation]; ok {
		t.Errorf("the Secret carries %s after the consent", v1alpha1.RefreshStartedAnnotation)
	}
	if ca.Status.AuthorizationURL != "" {
		t.Errorf("status.authorizationURL still set once Authorized")
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

// --- 2. Rotation with no invalid moment ---

// TestCloudRotationNeverInvalid: with 4-second access tokens, the Secret's access token, read every
// 100 ms for more than three lifetimes, is accepted by the simulator every time; the refreshes happen
// ahead of expiry, several times, without a refresh token ever being presented twice.
func TestCloudRotationNeverInvalid(t *testing.T) {
	t.Parallel()
	const (
		life   = 4 * time.Second
		window = 3*life + time.Second
	)
	e := newCloudEnv(t, cloudOpts{access: life})
	e.consent()
	before := e.stats()

	seen := map[string]bool{}
	checks, invalid, notReady := 0, 0, 0
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		ct := e.tokens()
		seen[ct.access] = true
		checks++
		if !e.accountOK(ct.access) {
			invalid++
			if invalid <= 3 {
				t.Errorf("the Secret's access token (expires_at %s) was refused at %s; %s",
					ct.expiresRaw, time.Now().UTC().Format(time.RFC3339Nano), describeCloud(e.get()))
			}
		}
		if ca := e.get(); !hasCondition(ca, v1alpha1.ConditionReady, metav1.ConditionTrue, "") {
			notReady++
			if notReady <= 3 {
				t.Errorf("Ready not True during rotation: %s", describeCloud(ca))
			}
		}
	}
	st := e.checkNoReuse("after the rotations")
	refreshes := st.Refreshes - before.Refreshes
	t.Logf("%d checks over %v: %d distinct access tokens, %d refreshes, %d refused", checks, window, len(seen), refreshes, invalid)
	if invalid > 0 {
		t.Errorf("%d of %d checks found an access token the simulator refused", invalid, checks)
	}
	if refreshes < 2 {
		t.Errorf("%d refreshes over %v of %v tokens, want at least 2", refreshes, window, life)
	}
	// Refreshing at about two thirds of the lifetime means one refresh every 1-3 s; more than one a
	// second on average is a loop.
	if maxN := int(window / time.Second); refreshes > maxN {
		t.Errorf("%d refreshes over %v, want at most %d", refreshes, window, maxN)
	}
	if len(seen) < 3 {
		t.Errorf("the Secret showed %d distinct access tokens, want at least 3", len(seen))
	}
	if n := e.tokenRequests(0) - e.tokenRequests(http.StatusOK); n != 0 {
		t.Errorf("%d token requests failed: %v", n, stats(t, e.sim))
	}
	if len(e.events(v1alpha1.EventRefreshed)) == 0 {
		t.Errorf("no Normal event Refreshed after %d refreshes", refreshes)
	}
}

// --- 3. Restarts in the middle of a refresh ---

// midRefresh sets up a consented CloudAuthorization, makes the simulator hold its token answers for
// hold (it rotates first), asks for a refresh and returns once the simulator has rotated the refresh
// token while the manager still waits for the answer. It returns the tokens from before the refresh and
// the stats from just before it.
func midRefresh(t *testing.T, e *cloudEnv, hold time.Duration, request string) (cloudTokens, harness.CloudStats) {
	t.Helper()
	// Whatever happens below, the suite keeps a running manager.
	t.Cleanup(func() {
		if !mgr.Running() {
			if err := mgr.Start(context.Background()); err != nil {
				t.Errorf("start the manager again: %v", err)
			}
		}
	})
	e.consent()
	old := e.tokens()
	before := e.stats()
	if err := e.sim.SetCloudTokenDelay(hold); err != nil {
		t.Fatalf("set the token delay: %v", err)
	}
	e.requestRefresh(request)
	e.waitRefreshes(before.Refreshes+1, cloudWait)
	// The marker must have been written (and confirmed) before the refresh token was sent.
	ct, _, _ := e.readSecret()
	if _, ok := ct.annotations[v1alpha1.RefreshStartedAnnotation]; !ok {
		t.Errorf("the simulator rotated the refresh token but the Secret carries no %s", v1alpha1.RefreshStartedAnnotation)
	}
	if ct.refresh != old.refresh {
		t.Fatalf("the Secret's refresh token changed before the answer was released")
	}
	return old, before
}

// TestCloudRestartMidRefreshSIGTERM: a SIGTERM while a refresh is in flight lets it complete and be
// stored before the manager exits; after the restart the stored refresh token works and nothing was sent
// twice. Serial: it restarts the suite's manager.
func TestCloudRestartMidRefreshSIGTERM(t *testing.T) {
	const hold = 2 * time.Second
	e := newCloudEnv(t, cloudOpts{})
	old, before := midRefresh(t, e, hold, "sigterm")

	stopping := time.Now()
	if err := mgr.Stop(); err != nil {
		t.Errorf("the manager did not shut down cleanly: %v", err)
	}
	t.Logf("the manager exited %v after SIGTERM (the answer was held %v)", time.Since(stopping).Round(10*time.Millisecond), hold)

	// Before anything restarts: the answer of the refresh in flight is in the Secret.
	ct, _, ok := e.readSecret()
	switch {
	case !ok:
		t.Fatalf("the Secret is gone")
	case ct.refresh == "" || ct.refresh == old.refresh:
		t.Errorf("after SIGTERM the Secret holds %s refresh token, want the rotated one",
			map[bool]string{true: "no", false: "the old (rotated, now dead)"}[ct.refresh == ""])
	case ct.access == old.access:
		t.Errorf("after SIGTERM the Secret still holds the old access token")
	}
	if _, marked := ct.annotations[v1alpha1.RefreshStartedAnnotation]; marked {
		t.Errorf("after SIGTERM the Secret still carries %s: the answer was not stored", v1alpha1.RefreshStartedAnnotation)
	}
	if ct.access != "" && !e.accountOK(ct.access) {
		t.Errorf("the access token stored at SIGTERM is refused by the simulator")
	}

	if err := e.sim.SetCloudTokenDelay(0); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(t.Context()); err != nil {
		t.Fatalf("restart the manager: %v", err)
	}
	e.waitReady()
	time.Sleep(2 * time.Second) // room for a stray refresh after the restart
	st := e.checkNoReuse("after the SIGTERM restart")
	if n := st.Refreshes - before.Refreshes; n != 1 {
		t.Errorf("%d refreshes for one refresh request across the SIGTERM restart, want exactly 1 (was the request acted on again after the restart? %s)",
			n, describeCloud(e.get()))
	}
	if st.LiveRefreshTokens != 1 {
		t.Errorf("%d live refresh tokens at the simulator, want 1", st.LiveRefreshTokens)
	}

	// The stored refresh token is the live one: one more refresh works, with no reuse.
	now := e.tokens()
	e.requestRefresh("after-sigterm")
	e.wait(cloudWait, "refresh request after-sigterm acted on", func(ca *v1alpha1.CloudAuthorization) bool {
		return ca.Status.ObservedRefreshRequest == "after-sigterm"
	})
	e.waitReady()
	after := e.tokens()
	if after.refresh == now.refresh || after.access == now.access {
		t.Errorf("the refresh after the restart did not rotate the tokens")
	}
	if !e.accountOK(after.access) {
		t.Errorf("the access token after the restart is refused")
	}
	e.checkNoReuse("after a refresh following the SIGTERM restart")
}

// TestCloudRestartMidRefreshSIGKILL: a manager killed while a refresh is in flight leaves the
// refresh-started-at marker; the restarted manager does not send that (already rotated) refresh token
// again but reports ReauthorizationRequired with a new authorization URL, after at most the in-flight
// bound (--upstream-timeout + 5s). A new consent recovers. Serial: it kills the suite's manager.
func TestCloudRestartMidRefreshSIGKILL(t *testing.T) {
	const hold = 2 * time.Second
	e := newCloudEnv(t, cloudOpts{})
	consentURL := ""
	e.wait(cloudWait, "an authorization URL", func(ca *v1alpha1.CloudAuthorization) bool {
		consentURL = ca.Status.AuthorizationURL
		return consentURL != ""
	})
	old, before := midRefresh(t, e, hold, "sigkill")

	if err := mgr.Kill(); err != nil {
		t.Errorf("kill the manager: %v", err)
	}
	killed := time.Now()
	ct, _, _ := e.readSecret()
	marker, marked := ct.annotations[v1alpha1.RefreshStartedAnnotation]
	if !marked || ct.refresh != old.refresh {
		t.Fatalf("after SIGKILL: marker present=%v, refresh token unchanged=%v; want the marker and the old refresh token", marked, ct.refresh == old.refresh)
	}
	markedAt, err := time.Parse(time.RFC3339Nano, marker)
	if err != nil {
		t.Errorf("%s = %q is not RFC 3339: %v", v1alpha1.RefreshStartedAnnotation, marker, err)
		markedAt = killed
	}
	// The held answer goes nowhere; the rotated refresh token in the Secret is dead.
	time.Sleep(hold)
	if err := e.sim.SetCloudTokenDelay(0); err != nil {
		t.Fatal(err)
	}
	tokensAtKill := e.tokenRequests(0)

	if err := mgr.Start(t.Context()); err != nil {
		t.Fatalf("restart the manager: %v", err)
	}
	ca := e.waitAuthorized(metav1.ConditionFalse, v1alpha1.ReasonReauthorizationRequired, inFlightBound+cloudWait)
	t.Logf("ReauthorizationRequired %v after the marker was written (in-flight bound %v), %v after the kill",
		time.Since(markedAt).Round(10*time.Millisecond), inFlightBound, time.Since(killed).Round(10*time.Millisecond))
	if hasCondition(ca, v1alpha1.ConditionReady, metav1.ConditionTrue, "") {
		t.Errorf("Ready=True without a refresh token: %s", describeCloud(ca))
	}
	newURL := e.waitURL(consentURL)
	if newURL == consentURL {
		t.Errorf("the authorization URL was not replaced")
	}
	ct, _, _ = e.readSecret()
	if ct.refresh != "" {
		t.Errorf("the Secret still holds the refresh token whose refresh was interrupted")
	}
	if _, ok := ct.annotations[v1alpha1.RefreshStartedAnnotation]; ok {
		t.Errorf("the Secret still carries %s after ReauthorizationRequired", v1alpha1.RefreshStartedAnnotation)
	}
	if len(e.events(v1alpha1.ReasonReauthorizationRequired)) == 0 {
		t.Errorf("no %s event", v1alpha1.ReasonReauthorizationRequired)
	}

	time.Sleep(2 * time.Second) // room for a stray refresh
	st := e.checkNoReuse("after the SIGKILL restart")
	if n := e.tokenRequests(0) - tokensAtKill; n != 0 {
		t.Errorf("%d token requests after the restart, want none: the interrupted refresh token must never be sent again: %v", n, stats(t, e.sim))
	}
	if n := st.Refreshes - before.Refreshes; n != 1 {
		t.Errorf("%d refreshes, want exactly the interrupted one", n)
	}

	// A person consents again: authorized anew.
	b := e.browse(newURL)
	if b.status != http.StatusOK {
		t.Fatalf("consent after ReauthorizationRequired: callback status %d: %.300s", b.status, b.body)
	}
	e.waitReady()
	if now := e.tokens(); !e.accountOK(now.access) {
		t.Errorf("the access token after the new consent is refused")
	}
	e.checkNoReuse("after the new consent")
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
	real := mustParse(t, authURL).Query().Get("state")
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
	if ca := e.get(); ca.Status.AuthorizationURL != authURL || !hasCondition(ca, v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending) {
		t.Errorf("forged callbacks changed the status (URL unchanged: %v): %s", ca.Status.AuthorizationURL == authURL, describeCloud(ca))
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
	// The same authorization URL opened again: a fresh code from the simulator, with a spent state.
	again := e.browse(authURL)
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
	if ca.Status.AuthorizationURL != "" {
		t.Errorf("the replays put an authorization URL back in status")
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("parse URL: %v", err)
	}
	return u
}

// --- 5. Denial ---

// TestCloudConsentDenied: a person refusing consent gives Authorized=False reason AccessDenied and a
// new, different authorization URL; the old one's state is spent; consenting at the new one works.
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
	if mustParse(t, second).Query().Get("state") == mustParse(t, first).Query().Get("state") {
		t.Errorf("the new authorization URL reuses the old state")
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
	if ca := e.get(); !hasCondition(ca, v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAccessDenied) || ca.Status.AuthorizationURL != second {
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

// --- 6. Keep-alive ---

// TestCloudKeepAlive: with hour-long access tokens and refreshTokenKeepAlive 2s, the operator refreshes
// about every 2 seconds anyway (the keep-alive time is taken to the whole second, so 1-2 s apart), each
// refresh with the latest refresh token.
func TestCloudKeepAlive(t *testing.T) {
	t.Parallel()
	const (
		keepAlive = 2 * time.Second
		window    = 8 * time.Second
		// Generous: one refresh every 1-2 s gives 4-8 in the window.
		minRefreshes, maxRefreshes = 3, 10
	)
	e := newCloudEnv(t, cloudOpts{mutate: func(ca *v1alpha1.CloudAuthorization) {
		ca.Spec.RefreshTokenKeepAlive = &metav1.Duration{Duration: keepAlive}
	}})
	e.consent()
	before := e.stats()
	time.Sleep(window)
	st := e.checkNoReuse("after the keep-alive refreshes")
	n := st.Refreshes - before.Refreshes
	t.Logf("%d keep-alive refreshes in %v (keep-alive %v)", n, window, keepAlive)
	if n < minRefreshes || n > maxRefreshes {
		t.Errorf("%d refreshes in %v with refreshTokenKeepAlive %v and hour-long access tokens, want %d-%d",
			n, window, keepAlive, minRefreshes, maxRefreshes)
	}
	ca := e.waitReady()
	ct := e.tokens()
	if !e.accountOK(ct.access) {
		t.Errorf("the Secret's access token is refused after the keep-alive refreshes")
	}
	if st.LiveRefreshTokens != 1 {
		t.Errorf("%d live refresh tokens at the simulator, want 1", st.LiveRefreshTokens)
	}
	if ca.Status.RenewalTime == nil || ca.Status.RenewalTime.After(time.Now().Add(keepAlive+time.Second)) {
		t.Errorf("status.renewalTime = %v, want within the keep-alive", ca.Status.RenewalTime)
	}
}

// --- 7. Revoked refresh token ---

// TestCloudRevokedRefreshToken: after the person removes the app (the simulator revokes the grant), the
// next refresh is refused once; the operator reports ReauthorizationRequired with a new authorization
// URL and does not try again. A new consent recovers.
func TestCloudRevokedRefreshToken(t *testing.T) {
	t.Parallel()
	e := newCloudEnv(t, cloudOpts{})
	consentURL := e.waitURL()
	e.consent()
	old := e.tokens()
	if n, err := e.sim.RevokeCloudGrants(e.key); err != nil || n != 1 {
		t.Fatalf("revoke: %d grants ended (want 1), %v", n, err)
	}
	requests, refused := e.tokenRequests(0), e.tokenRequests(http.StatusUnauthorized)
	before := e.stats()

	e.requestRefresh("after-revoke")
	ca := e.waitAuthorized(metav1.ConditionFalse, v1alpha1.ReasonReauthorizationRequired, cloudWait)
	if hasCondition(ca, v1alpha1.ConditionReady, metav1.ConditionTrue, "") {
		t.Errorf("Ready=True with a revoked grant: %s", describeCloud(ca))
	}
	newURL := e.waitURL(consentURL)
	if ct, _, _ := e.readSecret(); ct.refresh != "" {
		t.Errorf("the Secret still holds the refused refresh token")
	}

	time.Sleep(3 * time.Second) // a retry loop would show here
	st := e.stats()
	if n, r := e.tokenRequests(0)-requests, e.tokenRequests(http.StatusUnauthorized)-refused; n != 1 || r != 1 {
		t.Errorf("%d token requests (%d refused with 401) after the revocation, want exactly one, refused: %v", n, r, stats(t, e.sim))
	}
	if st.InvalidGrants-before.InvalidGrants != 1 || st.RefreshTokenReuses != 0 || st.Refreshes != before.Refreshes {
		t.Errorf("cloud stats %+v (before %+v): want one invalid_grant, no reuse, no refresh", st, before)
	}
	if e.accountOK(old.access) {
		t.Errorf("the simulator still accepts the revoked grant's access token")
	}

	b := e.browse(newURL)
	if b.status != http.StatusOK {
		t.Fatalf("consent after the revocation: status %d: %.300s", b.status, b.body)
	}
	e.waitReady()
	if !e.accountOK(e.tokens().access) {
		t.Errorf("the access token of the new consent is refused")
	}
}

// --- 8. Leak scan ---

// TestCloudLeakScan drives the paths where secrets tend to leak, failures with upstream error bodies at
// hand: a code exchange refused for a wrong client secret, an expired code, then a consent and a
// refresh. The manager's log, the Events and the status must never show a code, an access or refresh
// token, or a client secret (right or wrong); every cloud test runs the same scan when it ends, and the
// suite runs it over everything at the end.
func TestCloudLeakScan(t *testing.T) {
	t.Parallel()
	const codeLife = time.Second
	wrong := "wrong-secret-" + randHex(16)
	e := newCloudEnv(t, cloudOpts{code: codeLife, credsSecret: wrong})
	sensitive.AddCredentials(e.key, wrong)

	// A wrong client secret: the exchange is refused and a new URL offered.
	first := e.waitURL()
	b := e.browse(first)
	if b.status < 400 || b.status == http.StatusOK {
		t.Errorf("callback with a code the upstream refuses to exchange: status %d, want an error page", b.status)
	}
	e.checkNoTokenIn("the page after a refused exchange", b, cloudTokens{})
	if strings.Contains(b.body, wrong) {
		t.Errorf("the page after a refused exchange holds the client secret in use")
	}
	second := e.waitURL(first)
	if n := e.tokenRequests(http.StatusUnauthorized); n != 1 {
		t.Errorf("%d refused token requests, want 1 (the exchange with the wrong secret): %v", n, stats(t, e.sim))
	}

	// The right secret, but the code has expired by the time the browser reaches the callback.
	creds := &corev1.Secret{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: e.ns, Name: "creds"}, creds); err != nil {
		t.Fatal(err)
	}
	creds.Data[harness.CredSecret] = []byte(e.secret)
	if err := k8s.Update(t.Context(), creds); err != nil {
		t.Fatalf("fix the credentials: %v", err)
	}
	loc, err := e.sim.CloudAuthorize(t.Context(), second)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	e.add("a Cloud authorization code", loc.Query().Get("code"))
	time.Sleep(codeLife + 500*time.Millisecond)
	status, body := callback(t, loc.Query())
	if status < 400 {
		t.Errorf("callback with an expired code: status %d, want an error page", status)
	}
	e.checkNoTokenIn("the page after an expired code", browsed{callback: loc, status: status, body: body}, cloudTokens{})
	third := e.waitURL(first, second)
	ca := e.get()
	if !hasCondition(ca, v1alpha1.ConditionAuthorized, metav1.ConditionFalse, "") {
		t.Errorf("Authorized not False after a failed exchange: %s", describeCloud(ca))
	}

	// A consent and a refresh, to have tokens that could leak.
	if ok := e.browse(third); ok.status != http.StatusOK {
		t.Fatalf("consent: status %d: %.300s", ok.status, ok.body)
	}
	e.waitReady()
	first1 := e.tokens()
	e.requestRefresh("leak-scan")
	e.wait(cloudWait, "refresh request leak-scan acted on", func(ca *v1alpha1.CloudAuthorization) bool {
		return ca.Status.ObservedRefreshRequest == "leak-scan"
	})
	e.waitReady()
	if now := e.tokens(); now.refresh == first1.refresh {
		t.Errorf("the requested refresh did not rotate the refresh token")
	}
	// One invalid_grant: the expired code. The wrong secret's 401 is invalid_client.
	if st := e.stats(); st.RefreshTokenReuses != 0 || st.CodeReuses != 0 || st.InvalidGrants != 1 {
		t.Errorf("cloud stats %+v: want no reuse and one invalid_grant (the expired code)", st)
	}
	time.Sleep(500 * time.Millisecond) // let the log catch up
	if e.leaks.Count("a Cloud authorization code") < 2 || e.leaks.Count("a Cloud refresh token") < 2 {
		t.Fatalf("too few values recorded for the scan to mean anything")
	}
	e.scanLeaks()
}
