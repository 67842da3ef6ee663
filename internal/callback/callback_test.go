package callback

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/cloudapi"
	"github.com/credops/thingspace-operator/internal/consent"
	"github.com/credops/thingspace-operator/internal/inflight"
	"github.com/credops/thingspace-operator/internal/simulator"
)

const (
	appID     = "cloud-app"
	appSecret = "cloud-app-secret"
	redirect  = "https://op.example/oauth2/callback"
)

// backend records what the handler stored, and what it handed over when storeErr fails the store.
type backend struct {
	cl       *cloudapi.Client
	mu       sync.Mutex
	stored   []cloudapi.Tokens
	storeErr error
	kept     []cloudapi.Tokens
}

func (b *backend) KeepGrant(_ *v1alpha1.CloudAuthorization, t cloudapi.Tokens, _ time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.kept = append(b.kept, t)
}

func (b *backend) Upstream(context.Context, *v1alpha1.CloudAuthorization) (*cloudapi.Client, cloudapi.Credentials, error) {
	return b.cl, cloudapi.Credentials{Key: appID, Secret: appSecret}, nil
}

func (b *backend) StoreGrant(_ context.Context, _ *v1alpha1.CloudAuthorization, t cloudapi.Tokens, received time.Time) (time.Time, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.storeErr != nil {
		return time.Time{}, b.storeErr
	}
	b.stored = append(b.stored, t)
	if t.AccessToken == "" {
		return time.Time{}, nil
	}
	return received.Add(t.ExpiresIn), nil
}

func (b *backend) DescribeStoreFailure(error) string { return "failed" }

type fixture struct {
	t       *testing.T
	sim     *simulator.Server
	simURL  string
	k8s     client.Client
	h       *Handler
	b       *backend
	tracker *inflight.Tracker
	clk     *clocktesting.FakeClock
	ca      *v1alpha1.CloudAuthorization
	// token is the start token of the consent link; the state sent to Verizon derives from it.
	token string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, tracker: &inflight.Tracker{}}
	f.sim = simulator.New(simulator.Config{CloudApps: map[string]simulator.CloudApp{appID: {Secret: appSecret, CallbackURL: redirect}}})
	srv := httptest.NewServer(f.sim)
	t.Cleanup(srv.Close)
	f.simURL = srv.URL
	cl, err := cloudapi.New(srv.URL+"/cloud/1", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	f.b = &backend{cl: cl}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	f.clk = clocktesting.NewFakeClock(time.Now())
	f.ca = &v1alpha1.CloudAuthorization{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "photos", UID: "u1"},
		Spec: v1alpha1.CloudAuthorizationSpec{CallbackURL: redirect, SecretName: "photos-tokens"}}
	store := &consent.Store{TTL: time.Minute}
	link, _, err := store.Ensure(&f.ca.Status, f.ca, "", f.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.token = consent.TokenOf(link)
	f.k8s = fake.NewClientBuilder().WithScheme(scheme).WithObjects(f.ca.DeepCopy()).
		WithStatusSubresource(&v1alpha1.CloudAuthorization{}).
		WithIndex(&v1alpha1.CloudAuthorization{}, consent.IndexField, func(o client.Object) []string {
			return []string{o.(*v1alpha1.CloudAuthorization).Status.ConsentStateHash}
		}).Build()
	f.h = NewHandler(Handler{Client: f.k8s, APIReader: f.k8s, Backend: f.b, Consent: store, Clock: f.clk,
		Recorder: events.NewFakeRecorder(100), InFlight: f.tracker, LookupWait: 100 * time.Millisecond})
	return f
}

// state is the OAuth2 state of the consent link.
func (f *fixture) state() string { return consent.State(f.token) }

// live reports whether the object's status still offers the fixture's consent.
func (f *fixture) live() bool {
	f.t.Helper()
	return f.get().Status.ConsentStateHash == consent.Hash(f.state())
}

func (f *fixture) get() *v1alpha1.CloudAuthorization {
	f.t.Helper()
	ca := &v1alpha1.CloudAuthorization{}
	if err := f.k8s.Get(context.Background(), client.ObjectKeyFromObject(f.ca), ca); err != nil {
		f.t.Fatal(err)
	}
	return ca
}

// cookie is the cookie the start endpoint sets for the fixture's consent.
func (f *fixture) cookie() *http.Cookie {
	return consent.Cookie(f.token, true, f.clk.Now().Add(time.Minute), f.clk.Now())
}

// code gets a fresh authorization code from the simulator, as a consenting browser would.
func (f *fixture) code() string { return f.codeFor(redirect) }

func (f *fixture) codeFor(redirectURI string) string {
	f.t.Helper()
	q := url.Values{"client_id": {appID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "state": {"x"}}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(f.simURL + "/cloud/1/oauth2/authorize?" + q.Encode())
	if err != nil {
		f.t.Fatal(err)
	}
	_ = resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	return loc.Query().Get("code")
}

// callback is the callback's target with code and the fixture's state.
func (f *fixture) callback(code string) string {
	return Path + "?code=" + url.QueryEscape(code) + "&state=" + url.QueryEscape(f.state())
}

func (f *fixture) call(method, target string, cookies ...*http.Cookie) (int, string) {
	f.t.Helper()
	w := f.do(method, target, cookies...)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func (f *fixture) do(method, target string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	f.t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest(method, target, nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	f.h.ServeHTTP(w, r)
	if w.Header().Get("Cache-Control") != "no-store" && w.Code != http.StatusNotFound && w.Code != http.StatusSeeOther {
		f.t.Errorf("%s %s: page is cacheable", method, r.URL.Path)
	}
	return w
}

func TestHandlerRefusesWhatItDidNotIssue(t *testing.T) {
	f := newFixture(t)
	if code, _ := f.call(http.MethodPost, Path+"?state="+f.state(), f.cookie()); code != http.StatusMethodNotAllowed {
		t.Errorf("POST answered %d", code)
	}
	if code, _ := f.call(http.MethodGet, "/elsewhere"); code != http.StatusNotFound {
		t.Errorf("other path answered %d", code)
	}
	for _, s := range []string{"", "short", strings.Repeat("A", len(f.state()))} {
		if code, _ := f.call(http.MethodGet, Path+"?code=c&state="+url.QueryEscape(s), f.cookie()); code != http.StatusBadRequest {
			t.Errorf("state %q answered %d", s, code)
		}
	}
	// The start token is not the state: sent as one, it is refused (it has no cookie of its own either).
	if code, _ := f.call(http.MethodGet, Path+"?code=c&state="+url.QueryEscape(f.token), f.cookie()); code != http.StatusBadRequest {
		t.Errorf("the start token as state answered %d", code)
	}
	if got := f.sim.CloudStats(); got.CodeExchanges != 0 || !f.live() {
		t.Fatalf("a refused request reached the token endpoint or spent the state: %+v", got)
	}
}

func TestHandlerExchangesOnceAndStores(t *testing.T) {
	f := newFixture(t)
	target := f.callback(f.code())
	w := f.do(http.MethodGet, target, f.cookie())
	page, _ := io.ReadAll(w.Result().Body)
	if w.Code != http.StatusOK || !strings.Contains(string(page), "complete") {
		t.Fatalf("answered %d: %s", w.Code, page)
	}
	if len(f.b.stored) != 1 || f.b.stored[0].RefreshToken == "" || f.b.stored[0].AccessToken == "" {
		t.Fatalf("stored %v", f.b.stored)
	}
	if strings.Contains(string(page), f.b.stored[0].AccessToken) || strings.Contains(string(page), f.b.stored[0].RefreshToken) {
		t.Fatal("the page shows a token")
	}
	if c := w.Result().Cookies(); len(c) != 1 || c[0].Name != f.cookie().Name || c[0].MaxAge >= 0 {
		t.Errorf("the binding cookie was not removed: %v", c)
	}
	if c := meta.FindStatusCondition(f.get().Status.Conditions, v1alpha1.ConditionAuthorized); c == nil || c.Message != consent.ExchangingMessage {
		t.Errorf("Authorized = %+v, want the exchanging message", c)
	}
	// A replay finds the state spent: no second exchange.
	if code, _ := f.call(http.MethodGet, target, f.cookie()); code != http.StatusBadRequest {
		t.Fatalf("replay answered %d", code)
	}
	if got := f.sim.CloudStats(); got.CodeExchanges != 1 || got.CodeReuses != 0 || f.tracker.InFlight() != 0 {
		t.Fatalf("%+v, in flight %d", got, f.tracker.InFlight())
	}
}

// A callback from a browser that did not start the consent (no cookie, another consent's, a forged
// one, the plain cookie for an https callback) is a 400 that reads nothing, spends nothing and sends
// nothing to Verizon, for a code and for a denial alike; each is counted by reason.
func TestHandlerRefusesAnotherBrowser(t *testing.T) {
	f := newFixture(t)
	otherLink, _, _ := (&consent.Store{}).Ensure(f.ca.Status.DeepCopy(), f.ca, "", f.clk.Now())
	other := consent.TokenOf(otherLink)
	plain := consent.Cookie(f.token, false, f.clk.Now().Add(time.Minute), f.clk.Now())
	for _, c := range []struct {
		name    string
		cookies []*http.Cookie
		reason  string
	}{
		{"no cookie", nil, reasonCookieMissing},
		{"another consent's cookie", []*http.Cookie{consent.Cookie(other, true, f.clk.Now().Add(time.Minute), f.clk.Now())}, reasonCookieMissing},
		{"a forged value", []*http.Cookie{{Name: f.cookie().Name, Value: other}}, reasonCookieMismatch},
		{"the state as value", []*http.Cookie{{Name: f.cookie().Name, Value: f.state()}}, reasonCookieMismatch},
		{"the plain cookie for an https callback", []*http.Cookie{plain}, reasonCookieMismatch},
	} {
		for _, q := range []string{f.callback(f.code()), Path + "?error=access_denied&state=" + url.QueryEscape(f.state())} {
			before := testutil.ToFloat64(RejectedTotal.WithLabelValues(endpointCallback, c.reason))
			code, page := f.call(http.MethodGet, q, c.cookies...)
			if code != http.StatusBadRequest || !strings.Contains(page, "browser") {
				t.Errorf("%s: answered %d: %s", c.name, code, page)
			}
			if got := testutil.ToFloat64(RejectedTotal.WithLabelValues(endpointCallback, c.reason)) - before; got != 1 {
				t.Errorf("%s: %s counted %v times", c.name, c.reason, got)
			}
		}
	}
	if got := f.sim.CloudStats(); got.CodeExchanges != 0 || !f.live() || len(f.b.stored) != 0 {
		t.Fatalf("a callback without its cookie was exchanged or spent the state: %+v", got)
	}
	// The person's own browser still completes.
	if code, _ := f.call(http.MethodGet, f.callback(f.code()), f.cookie()); code != http.StatusOK {
		t.Fatalf("with the cookie: %d", code)
	}
}

// An http callback (insecure mode) is bound by the plain cookie, as browsers drop Secure ones there.
func TestHandlerInsecureCallbackTakesThePlainCookie(t *testing.T) {
	f := newFixture(t)
	ca := f.get()
	ca.Spec.CallbackURL = "http://127.0.0.1:8082/oauth2/callback"
	if err := f.k8s.Update(context.Background(), ca); err != nil {
		t.Fatal(err)
	}
	f.sim.SetCloudApp(appID, appSecret, ca.Spec.CallbackURL)
	plain := consent.Cookie(f.token, false, f.clk.Now().Add(time.Minute), f.clk.Now())
	if code, page := f.call(http.MethodGet, f.callback(f.codeFor(ca.Spec.CallbackURL)), plain); code != http.StatusOK {
		t.Fatalf("answered %d: %s", code, page)
	}
}

// Issue 8 scenario 7: a 2xx whose access token is unusable still carries the grant's refresh token.
func TestHandlerStoresTheRefreshTokenOfAnUnusableAnswer(t *testing.T) {
	f := newFixture(t)
	f.sim.SetCloudTokenShape(simulator.CloudShapeBadAccessToken)
	code, _ := f.call(http.MethodGet, f.callback(f.code()), f.cookie())
	if code != http.StatusOK || len(f.b.stored) != 1 || f.b.stored[0].RefreshToken == "" || f.b.stored[0].AccessToken != "" {
		t.Fatalf("answered %d, stored %v", code, f.b.stored)
	}
}

// Issue 8: tokens the Secret would not take are handed to the reconciler, not thrown away with a new
// authorization URL; the browser is told the authorization was received (an envtest shows them land:
// internal/controller TestIssue8CodeExchangeAnswerSurvivesAStoreOutage).
func TestHandlerHandsOverTokensItCannotStore(t *testing.T) {
	f := newFixture(t)
	f.b.storeErr = errors.New("the API server is away")
	code, page := f.call(http.MethodGet, f.callback(f.code()), f.cookie())
	if code != http.StatusAccepted || !strings.Contains(page, "received") {
		t.Fatalf("answered %d: %s", code, page)
	}
	if len(f.b.kept) != 1 || f.b.kept[0].RefreshToken == "" || f.b.kept[0].AccessToken == "" {
		t.Fatalf("handed over %v", f.b.kept)
	}
	if strings.Contains(page, f.b.kept[0].AccessToken) || strings.Contains(page, f.b.kept[0].RefreshToken) {
		t.Fatal("the page shows a token")
	}
	if f.get().Status.ConsentStateHash != "" {
		t.Fatal("a consent is offered although the grant is in hand")
	}
	if got := f.sim.CloudStats(); got.CodeExchanges != 1 || f.tracker.InFlight() != 0 {
		t.Fatalf("%+v, in flight %d", got, f.tracker.InFlight())
	}
}

// Issue 8 scenario 18: once shutdown has begun no exchange starts, and the state is not spent (the
// person reloads against a manager that can finish).
func TestHandlerRefusesToStartAnExchangeWhileShuttingDown(t *testing.T) {
	f := newFixture(t)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	f.tracker.Drain(done)
	code, _ := f.call(http.MethodGet, f.callback(f.code()), f.cookie())
	if code != http.StatusServiceUnavailable {
		t.Fatalf("answered %d", code)
	}
	if !f.live() || len(f.b.stored) != 0 || f.sim.CloudStats().CodeExchanges != 0 {
		t.Fatal("an exchange started, or the state was spent, during shutdown")
	}
}

// A denial from the browser that started spends the state and records AccessDenied (the reconciler
// then offers a new link); it says nothing of a new link itself.
func TestHandlerAccessDeniedSpendsTheState(t *testing.T) {
	f := newFixture(t)
	code, page := f.call(http.MethodGet, Path+"?error=access_denied&state="+url.QueryEscape(f.state()), f.cookie())
	if code != http.StatusOK || !strings.Contains(page, "not granted") {
		t.Fatalf("answered %d: %s", code, page)
	}
	ca := f.get()
	if ca.Status.ConsentStateHash != "" || !meta.IsStatusConditionFalse(ca.Status.Conditions, v1alpha1.ConditionAuthorized) ||
		meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionAuthorized).Reason != v1alpha1.ReasonAccessDenied {
		t.Fatalf("status after a denial: %+v", ca.Status)
	}
}
