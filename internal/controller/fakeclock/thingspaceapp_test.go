package fakeclock

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/controller"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// ThingSpaceApp time edges on the fake clock (issue 8 scenarios 1, 3, 10 and 12).

const revokeCalls = "POST /api/ts/v1/oauth2/revoke"

func (f *fixture) appCreds() {
	f.credentials("creds", map[string]string{v1alpha1.CredentialsKeyKey: f.key, v1alpha1.CredentialsKeySecret: f.secret})
}

func (f *fixture) appToken(name string) (string, time.Time) {
	d := f.secretData(name + "-token")
	exp, _ := time.Parse(time.RFC3339, string(d[v1alpha1.SecretKeyExpiresAt]))
	return string(d[v1alpha1.SecretKeyAccessToken]), exp
}

func (f *fixture) tsApp(name string) *v1alpha1.ThingSpaceApp {
	a := &v1alpha1.ThingSpaceApp{}
	f.get(name, a)
	return a
}

// events counts the events with reason ("" for any) on the object name.
func (f *fixture) events(name, reason string) int {
	evs := &corev1.EventList{}
	must(f.t, k8s.List(context.Background(), evs, client.InNamespace(f.ns)))
	n := 0
	for _, e := range evs.Items {
		if e.InvolvedObject.Name == name && (reason == "" || e.Reason == reason) {
			n++
		}
	}
	return n
}

// directToken asks the simulator for key's token the way another client of the key would.
func (f *fixture) directToken() (string, int64) {
	req := httptest.NewRequest(http.MethodPost, "/api/ts/v1/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(f.key, f.secret)
	rec := httptest.NewRecorder()
	f.sim.ServeHTTP(rec, req)
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
		f.t.Fatalf("direct token request: %d", rec.Code)
	}
	return body.AccessToken, body.ExpiresIn
}

// readyWatch records every Ready condition the app shows while the test steps the clock.
type readyWatch struct {
	f    *fixture
	name string
	mu   sync.Mutex
	seen []string
	stop chan struct{}
	done chan struct{}
}

func (f *fixture) watchReady(name string) *readyWatch {
	w := &readyWatch{f: f, name: name, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			a := &v1alpha1.ThingSpaceApp{}
			if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: name}, a); err == nil {
				if c := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady); c != nil {
					w.mu.Lock()
					if s := string(c.Status) + "/" + c.Reason; len(w.seen) == 0 || w.seen[len(w.seen)-1] != s {
						w.seen = append(w.seen, s)
					}
					w.mu.Unlock()
				}
			}
			select {
			case <-w.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	f.t.Cleanup(w.end)
	return w
}

func (w *readyWatch) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *readyWatch) states() []string {
	w.end()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.seen...)
}

// Issue 8 scenario 12: at the end of a token's life ThingSpace answers with the same token and
// expires_in 0. That is "expired now": the operator asks again shortly, with no warning and no Ready
// flap, and the next answer is a new token. Two ways to get there: the contract's own (the app's token
// came from a repeat request, so its expires_in was rounded down and the operator's expiry is up to a
// second early), and the simulator's ExpiryGrace switch (a gateway lagging the client). Issue 14: in
// the contract's case the new token lands within 250 ms of the real expiry (it took up to a second).
func TestScenario12SameTokenWithZeroLifetimeIsRetriedQuietly(t *testing.T) {
	for _, tc := range []struct {
		name  string
		grace time.Duration
	}{{"rounded-down", 0}, {"expiry-grace", 2 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, simulator.Config{TokenLifetime: time.Hour, ExpiryGrace: tc.grace})
			f.appCreds()
			var real time.Time // the token's expiry at the simulator, when known
			if tc.grace == 0 {
				// Another client of the key asked 400 ms ago: the app gets expires_in 3599.
				f.directToken()
				real = f.clk.Now().Add(time.Hour)
				f.step(400 * time.Millisecond)
			}
			f.app("a", "creds")
			f.waitCondition("a", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
			first, exp := f.appToken("a")
			f.settle(300 * time.Millisecond)
			w := f.watchReady("a")

			// At the operator's expiry the platform still hands out the token, saying 0 seconds are left.
			f.stepTo(exp)
			f.eventually("a token call at expiry", 10*time.Second, func() bool { return f.sim.Stats().Total(tokenCalls) >= 2 })
			f.settle(300 * time.Millisecond)
			if tok, _ := f.appToken("a"); tok != first {
				t.Fatal("the token changed although the platform still handed out the old one")
			}
			out, _ := f.lastResult("ThingSpaceApp", "a")
			if out.err != nil || out.res.RequeueAfter != 250*time.Millisecond {
				t.Fatalf("after the same token with expires_in 0: result %+v, error %v; want a retry in 250ms", out.res, out.err)
			}
			for i := 0; i < 8; i++ {
				if tok, _ := f.appToken("a"); tok != first && tok != "" {
					break
				}
				f.step(out.res.RequeueAfter)
				f.settle(300 * time.Millisecond)
				out, _ = f.lastResult("ThingSpaceApp", "a")
			}
			if tok, _ := f.appToken("a"); tok == first || !f.sim.ValidBearer(tok) {
				t.Fatal("no new token after the same-token answers")
			}
			if late := f.clk.Now().Sub(real); !real.IsZero() && (late < 0 || late > 250*time.Millisecond) {
				t.Errorf("the new token landed %v after the real expiry, want within 250ms", late)
			}
			f.waitCondition("a", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
			for _, s := range w.states() {
				if s != "True/"+v1alpha1.ReasonTokenValid {
					t.Errorf("Ready flapped: %v", w.states())
					break
				}
			}
			if n := f.events("a", "RefreshFailed"); n != 0 {
				t.Errorf("%d RefreshFailed events for an expires_in 0 answer", n)
			}
			// The first token, the call at expiry, up to 4 in the contract's last second and, past
			// it (the gateway lagging), one a second.
			if n := f.sim.Stats().Total(tokenCalls); n > 7 {
				t.Errorf("%d token calls around one expiry", n)
			}
		})
	}
}

// Issue 8 scenario 1: renewBefore just short of the lifetime with jitter 0.5 planned the renewal before
// the token was issued: each pass revoked and refetched. The token must be used for a while first.
func TestScenario1RenewBeforeNearTheLifetimeDoesNotLoop(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour}, func(o *controller.Options) {
		o.Rand = func() float64 { return 0.5 }
	})
	f.appCreds()
	f.app("a", "creds", func(a *v1alpha1.ThingSpaceApp) { a.Spec.RenewBefore = &metav1.Duration{Duration: 58 * time.Minute} })
	f.waitCondition("a", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	f.settle(time.Second)
	if r := f.sim.Stats().Total(revokeCalls); r != 0 {
		t.Fatalf("%d revokes right after the first token: a renewal loop", r)
	}
	a := f.tsApp("a")
	if a.Status.RenewalTime == nil || a.Status.LastRefreshTime == nil ||
		a.Status.RenewalTime.Sub(a.Status.LastRefreshTime.Time) < 5*time.Minute {
		t.Fatalf("renewal planned too early: %+v", a.Status)
	}
	f.stepTo(a.Status.RenewalTime.Time)
	f.eventually("one rotation at the renewal time", 10*time.Second, func() bool { return f.sim.Stats().Total(revokeCalls) == 1 })
	f.settle(time.Second)
	if r := f.sim.Stats().Total(revokeCalls); r != 1 {
		t.Fatalf("%d revokes for one renewal", r)
	}
}

// Issue 8 scenario 3: a hand-edited expires_at far in the future in one app's Secret became the shared
// token's expiry for every holder of the key, and nothing refreshed it. The operator trusts a Secret's
// expiry only up to what the upstream said (status), so both apps still renew at the real expiry.
func TestScenario3PlantedExpiryIsNotTrustedOrShared(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.appCreds()
	f.app("a", "creds")
	f.app("b", "creds")
	f.waitCondition("a", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	f.waitCondition("b", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	f.settle(300 * time.Millisecond)
	tok, exp := f.appToken("a")
	if tb, _ := f.appToken("b"); tb != tok {
		t.Fatal("apps of one key hold different tokens")
	}

	s := &corev1.Secret{}
	f.get("a-token", s)
	s.Data[v1alpha1.SecretKeyExpiresAt] = []byte("2099-01-01T00:00:00.000Z")
	must(t, k8s.Update(context.Background(), s))
	f.settle(time.Second)
	for _, name := range []string{"a", "b"} {
		if st := f.tsApp(name).Status; st.ExpiresAt == nil || st.ExpiresAt.After(exp.Add(time.Second)) {
			t.Errorf("%s: status expiresAt %v, the token expires at %v", name, st.ExpiresAt, exp)
		}
		if _, e := f.appToken(name); e.After(exp.Add(time.Second)) {
			t.Errorf("%s: Secret expires_at %v, the token expires at %v", name, e, exp)
		}
	}

	// At the real expiry both renew.
	f.stepTo(exp.Add(time.Second))
	f.eventually("both apps hold a new token after the real expiry", 10*time.Second, func() bool {
		ta, _ := f.appToken("a")
		tb, _ := f.appToken("b")
		return ta != tok && ta == tb && f.sim.ValidBearer(ta)
	})
}

// gatedSim serves the fixture's simulator, answering status for the paths in fail while they are set.
type gatedSim struct {
	f    *fixture
	mu   sync.Mutex
	fail map[string]int
	// body, when set for a path, is answered with 200 instead.
	body map[string]string
	url  string
}

func (f *fixture) gated() *gatedSim {
	g := &gatedSim{f: f, fail: map[string]int{}, body: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		st, ok := g.fail[r.URL.Path]
		body, answer := g.body[r.URL.Path]
		g.mu.Unlock()
		if answer {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
			return
		}
		if ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(st)
			_, _ = w.Write([]byte(`{"error":"access_denied","error_description":"not today"}`))
			return
		}
		f.sim.ServeHTTP(w, r)
	}))
	f.t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

func (g *gatedSim) set(path string, status int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if status == 0 {
		delete(g.fail, path)
		return
	}
	g.fail[path] = status
}

// Issue 8 scenario 10: a 4xx from revoke (whose errors Verizon does not document) parked the app as
// CredentialsRejected for good, even at expiry when a plain token request works. It backs off instead,
// keeps the valid token, and at expiry asks for a token.
func TestScenario10RevokeRefusalIsNotATerminalStop(t *testing.T) {
	for _, status := range []int{http.StatusForbidden, http.StatusBadRequest, http.StatusUnauthorized} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
			g := f.gated()
			f.appCreds()
			f.app("a", "creds", func(a *v1alpha1.ThingSpaceApp) { a.Spec.Endpoint = g.url })
			f.waitCondition("a", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
			first, exp := f.appToken("a")
			f.settle(300 * time.Millisecond)

			g.set("/api/ts/v1/oauth2/revoke", status)
			a := f.tsApp("a")
			patch := client.MergeFrom(a.DeepCopy())
			a.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "now"}
			must(t, k8s.Patch(context.Background(), a, patch))
			f.waitCondition("a", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonRefreshFailing)
			if tok, _ := f.appToken("a"); tok != first {
				t.Fatal("the Secret lost its valid token")
			}
			out, _ := f.lastResult("ThingSpaceApp", "a")
			if out.res.RequeueAfter <= 0 {
				t.Fatalf("no retry planned after a refused revoke: %+v", out)
			}

			// At expiry a plain token request is made, and it works.
			calls := f.sim.Stats().Total(tokenCalls)
			f.stepTo(exp.Add(time.Second))
			f.eventually("a token request at expiry", 10*time.Second, func() bool { return f.sim.Stats().Total(tokenCalls) > calls })
			f.waitCondition("a", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
			if tok, _ := f.appToken("a"); tok == first || !f.sim.ValidBearer(tok) {
				t.Fatal("no new token at expiry")
			}
			if a := f.tsApp("a"); a.Status.RejectedCredentialsVersion != "" {
				t.Fatalf("credentials marked rejected: %+v", a.Status)
			}
		})
	}
}

// Issue 8 scenario 18: an expires_in of 68 years is capped (upstream/oauth) and the app says so in a
// Warning event; a missing one is assumed short, and said so too.
func TestScenario18UnusualLifetimesAreWarnedAbout(t *testing.T) {
	for _, tc := range []struct {
		name, expiresIn, reason string
		max                     time.Duration
	}{
		{"capped", `,"expires_in":2147483647`, v1alpha1.EventLifetimeCapped, 24 * time.Hour},
		{"assumed", ``, v1alpha1.EventLifetimeAssumed, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
			g := f.gated()
			g.mu.Lock()
			g.body["/api/ts/v1/oauth2/token"] = `{"access_token":"odd-token","token_type":"Bearer"` + tc.expiresIn + `}`
			g.mu.Unlock()
			f.appCreds()
			f.app("a", "creds", func(a *v1alpha1.ThingSpaceApp) { a.Spec.Endpoint = g.url })
			f.waitCondition("a", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
			if st := f.tsApp("a").Status; st.ExpiresAt == nil || st.ExpiresAt.After(f.clk.Now().Add(tc.max)) {
				t.Fatalf("expiresAt %v", st.ExpiresAt)
			}
			f.eventually("a "+tc.reason+" warning", 10*time.Second, func() bool { return f.events("a", tc.reason) > 0 })
		})
	}
}
