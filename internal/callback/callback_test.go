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
	ca      *v1alpha1.CloudAuthorization
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
	clk := clocktesting.NewFakeClock(time.Now())
	f.ca = &v1alpha1.CloudAuthorization{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "photos", UID: "u1"},
		Spec: v1alpha1.CloudAuthorizationSpec{CallbackURL: redirect, SecretName: "photos-tokens"}}
	store := &consent.Store{TTL: time.Minute}
	if err := store.Issue(&f.ca.Status, cl, appID, &f.ca.Spec, clk.Now()); err != nil {
		t.Fatal(err)
	}
	f.k8s = fake.NewClientBuilder().WithScheme(scheme).WithObjects(f.ca.DeepCopy()).
		WithStatusSubresource(&v1alpha1.CloudAuthorization{}).
		WithIndex(&v1alpha1.CloudAuthorization{}, consent.IndexField, func(o client.Object) []string {
			return []string{consent.IndexValue(o.(*v1alpha1.CloudAuthorization))}
		}).Build()
	f.h = NewHandler(Handler{Client: f.k8s, APIReader: f.k8s, Backend: f.b, Consent: store, Clock: clk,
		Recorder: events.NewFakeRecorder(100), InFlight: f.tracker, LookupWait: 100 * time.Millisecond})
	return f
}

// state is the state of the object's current authorization URL.
func (f *fixture) state() string {
	f.t.Helper()
	ca := &v1alpha1.CloudAuthorization{}
	if err := f.k8s.Get(context.Background(), client.ObjectKeyFromObject(f.ca), ca); err != nil {
		f.t.Fatal(err)
	}
	u, _ := url.Parse(ca.Status.AuthorizationURL)
	return u.Query().Get("state")
}

// code gets a fresh authorization code from the simulator, as a consenting browser would.
func (f *fixture) code() string {
	f.t.Helper()
	q := url.Values{"client_id": {appID}, "redirect_uri": {redirect}, "response_type": {"code"}, "state": {"x"}}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(f.simURL + "/cloud/1/oauth2/authorize?" + q.Encode())
	if err != nil {
		f.t.Fatal(err)
	}
	_ = resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	return loc.Query().Get("code")
}

func (f *fixture) call(method, target string) (int, string) {
	f.t.Helper()
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	b, _ := io.ReadAll(w.Result().Body)
	if w.Header().Get("Cache-Control") != "no-store" && w.Code != http.StatusNotFound {
		f.t.Errorf("%s %s: page is cacheable", method, target)
	}
	return w.Code, string(b)
}

func TestHandlerRefusesWhatItDidNotIssue(t *testing.T) {
	f := newFixture(t)
	if code, _ := f.call(http.MethodPost, Path+"?state="+f.state()); code != http.StatusMethodNotAllowed {
		t.Errorf("POST answered %d", code)
	}
	if code, _ := f.call(http.MethodGet, "/elsewhere"); code != http.StatusNotFound {
		t.Errorf("other path answered %d", code)
	}
	for _, s := range []string{"", "short", strings.Repeat("A", len(f.state()))} {
		if code, _ := f.call(http.MethodGet, Path+"?code=c&state="+url.QueryEscape(s)); code != http.StatusBadRequest {
			t.Errorf("state %q answered %d", s, code)
		}
	}
	if got := f.sim.CloudStats(); got.CodeExchanges != 0 || f.state() == "" {
		t.Fatalf("a refused request reached the token endpoint or spent the state: %+v", got)
	}
}

func TestHandlerExchangesOnceAndStores(t *testing.T) {
	f := newFixture(t)
	target := Path + "?code=" + url.QueryEscape(f.code()) + "&state=" + url.QueryEscape(f.state())
	code, page := f.call(http.MethodGet, target)
	if code != http.StatusOK || !strings.Contains(page, "complete") {
		t.Fatalf("answered %d: %s", code, page)
	}
	if len(f.b.stored) != 1 || f.b.stored[0].RefreshToken == "" || f.b.stored[0].AccessToken == "" {
		t.Fatalf("stored %v", f.b.stored)
	}
	if strings.Contains(page, f.b.stored[0].AccessToken) || strings.Contains(page, f.b.stored[0].RefreshToken) {
		t.Fatal("the page shows a token")
	}
	// A replay finds the state spent: no second exchange.
	if code, _ := f.call(http.MethodGet, target); code != http.StatusBadRequest {
		t.Fatalf("replay answered %d", code)
	}
	if got := f.sim.CloudStats(); got.CodeExchanges != 1 || got.CodeReuses != 0 || f.tracker.InFlight() != 0 {
		t.Fatalf("%+v, in flight %d", got, f.tracker.InFlight())
	}
}

// Issue 8 scenario 7: a 2xx whose access token is unusable still carries the grant's refresh token.
func TestHandlerStoresTheRefreshTokenOfAnUnusableAnswer(t *testing.T) {
	f := newFixture(t)
	f.sim.SetCloudTokenShape(simulator.CloudShapeBadAccessToken)
	code, _ := f.call(http.MethodGet, Path+"?code="+url.QueryEscape(f.code())+"&state="+url.QueryEscape(f.state()))
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
	code, page := f.call(http.MethodGet, Path+"?code="+url.QueryEscape(f.code())+"&state="+url.QueryEscape(f.state()))
	if code != http.StatusAccepted || !strings.Contains(page, "received") {
		t.Fatalf("answered %d: %s", code, page)
	}
	if len(f.b.kept) != 1 || f.b.kept[0].RefreshToken == "" || f.b.kept[0].AccessToken == "" {
		t.Fatalf("handed over %v", f.b.kept)
	}
	if strings.Contains(page, f.b.kept[0].AccessToken) || strings.Contains(page, f.b.kept[0].RefreshToken) {
		t.Fatal("the page shows a token")
	}
	if f.state() != "" {
		t.Fatal("a new consent was asked for although the grant is in hand")
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
	state := f.state()
	code, _ := f.call(http.MethodGet, Path+"?code="+url.QueryEscape(f.code())+"&state="+url.QueryEscape(state))
	if code != http.StatusServiceUnavailable {
		t.Fatalf("answered %d", code)
	}
	if f.state() != state || len(f.b.stored) != 0 || f.sim.CloudStats().CodeExchanges != 0 {
		t.Fatal("an exchange started, or the state was spent, during shutdown")
	}
}

func TestHandlerAccessDeniedOffersANewURL(t *testing.T) {
	f := newFixture(t)
	state := f.state()
	code, page := f.call(http.MethodGet, Path+"?error=access_denied&state="+url.QueryEscape(state))
	if code != http.StatusOK || !strings.Contains(page, "not granted") {
		t.Fatalf("answered %d: %s", code, page)
	}
	if now := f.state(); now == "" || now == state {
		t.Fatal("no new authorization URL")
	}
}
