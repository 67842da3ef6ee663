package fakeclock

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// Issue 11 §1, the M2M side of a handover: the ThingSpaceApp "app" has a standby key set and hands over
// at expiresAt - handoverBefore (5m of a 1h token), publishing the other key set's token while the one
// it replaces stays valid until it expires.

const (
	handoverLifetime = time.Hour
	handoverAccount  = "0000123456-00001"
)

// pair is what a workload reads from the M2M Secret: both headers.
type pair struct{ bearer, session string }

// handoverWorld is m2mWorld with a second key set registered with the simulator ("standby-creds"), the
// app "app" naming it as its standby key set when standby is set.
func handoverWorld(f *fixture, standby bool) {
	f.t.Helper()
	f.sim.SetM2MUser(uwsUser, uwsPassword)
	key2, secret2 := f.key+"-standby", f.secret+"-standby"
	f.sim.SetApp(key2, secret2)
	f.credentials("app-creds", map[string]string{v1alpha1.CredentialsKeyKey: f.key, v1alpha1.CredentialsKeySecret: f.secret})
	f.credentials("standby-creds", map[string]string{v1alpha1.CredentialsKeyKey: key2, v1alpha1.CredentialsKeySecret: secret2})
	f.app("app", "app-creds", func(a *v1alpha1.ThingSpaceApp) {
		if standby {
			a.Spec.StandbyCredentialsSecretRef = &v1alpha1.LocalSecretReference{Name: "standby-creds"}
		}
	})
	f.waitCondition("app", &v1alpha1.ThingSpaceApp{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	f.credentials("uws", map[string]string{v1alpha1.CredentialsKeyUsername: uwsUser, v1alpha1.CredentialsKeyPassword: uwsPassword})
}

// nextHandover steps the clock to the app's next handover and waits until its Secret holds the new
// token, which it returns with the replaced one (still valid: nothing is revoked).
func (f *fixture) nextHandover() (replaced, published string) {
	f.t.Helper()
	app := f.tsApp("app")
	if app.Status.NextHandoverTime == nil {
		f.t.Fatalf("no handover scheduled: %+v", app.Status)
	}
	replaced, _ = f.appToken("app")
	f.stepTo(app.Status.NextHandoverTime.Time)
	f.eventually("the app's handover", 20*time.Second, func() bool {
		published, _ = f.appToken("app")
		return published != "" && published != replaced
	})
	if !f.sim.ValidBearer(replaced) {
		f.t.Fatal("the replaced token died at the handover")
	}
	return replaced, published
}

// walkValidTo is walkValid up to (not past) t.
func (f *fixture) walkValidTo(secret string, t time.Time, step time.Duration) {
	f.t.Helper()
	for f.clk.Now().Add(step).Before(t) {
		f.walkValid(secret, step, step)
	}
}

// current is the pair the M2M Secret holds.
func (f *fixture) current(secret string) pair {
	d := f.secretData(secret)
	return pair{string(d[v1alpha1.SecretKeyAccessToken]), string(d[v1alpha1.SecretKeySessionToken])}
}

// works reports whether p is accepted by the M2M keep-alive call, as a workload would make it.
func (f *fixture) works(p pair) bool {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.url+"/api/m2m/v1/accounts/"+handoverAccount, nil)
	must(f.t, err)
	req.Header.Set("Authorization", "Bearer "+p.bearer)
	req.Header.Set(simulator.M2MTokenHeader, p.session)
	resp, err := http.DefaultClient.Do(req)
	must(f.t, err)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// walkValid steps the clock by step until d has passed, checking after each step that the Secret's pair
// works.
func (f *fixture) walkValid(secret string, d, step time.Duration) {
	f.t.Helper()
	for end := f.clk.Now().Add(d); f.clk.Now().Before(end); {
		f.step(step)
		f.settle(200 * time.Millisecond)
		if p := f.current(secret); !f.works(p) {
			f.t.Fatalf("at %v the Secret holds a pair the platform refuses", f.clk.Now())
		}
	}
}

// recordPairs records every distinct pair the Secret name holds, from a watch (so no write is missed
// between polls); stop ends the watch and returns them in order.
func (f *fixture) recordPairs(name string) (stop func() []pair) {
	f.t.Helper()
	wc, err := client.NewWithWatch(cfg0(), client.Options{Scheme: scheme})
	must(f.t, err)
	w, err := wc.Watch(context.Background(), &corev1.SecretList{}, client.InNamespace(f.ns), client.MatchingFields{"metadata.name": name})
	must(f.t, err)
	var mu sync.Mutex
	var pairs []pair
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*corev1.Secret)
			if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
				continue
			}
			p := pair{string(s.Data[v1alpha1.SecretKeyAccessToken]), string(s.Data[v1alpha1.SecretKeySessionToken])}
			mu.Lock()
			if len(pairs) == 0 || pairs[len(pairs)-1] != p {
				pairs = append(pairs, p)
			}
			mu.Unlock()
		}
	}()
	return func() []pair {
		time.Sleep(200 * time.Millisecond) // let the last events arrive
		w.Stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return pairs
	}
}

func logins(f *fixture) int {
	info, _ := f.sim.M2MUser(uwsUser)
	return info.Logins
}

// An M2MSession across two handovers, with the platform tying sessions to their login's token and
// not: the Secret holds a working pair at every step, each handover costs exactly one login, and the
// Secret only ever changes both headers together (one write), while the replaced pair keeps working
// until its token expires.
func TestM2MHandoverKeepsAWorkingPair(t *testing.T) {
	for _, tied := range []bool{false, true} {
		t.Run(map[bool]string{false: "untied", true: "tied"}[tied], func(t *testing.T) {
			f := newFixture(t, simulator.Config{TokenLifetime: handoverLifetime, M2MSessionTiedToBearer: tied})
			handoverWorld(f, true)
			stop := f.recordPairs("s-session")
			f.create(newSession("s"))
			f.waitCondition("s", &v1alpha1.M2MSession{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
			f.settle(300 * time.Millisecond)
			want := []pair{f.current("s-session")}
			sess := &v1alpha1.M2MSession{}
			f.get("s", sess)
			if sess.Status.LoginTokenDigest == "" || sess.Status.LoginTokenExpiresAt == nil {
				t.Fatalf("no login token on record: %+v", sess.Status)
			}
			for i := 1; i <= 2; i++ {
				f.walkValidTo("s-session", f.tsApp("app").Status.NextHandoverTime.Time, 5*time.Minute)
				if n := logins(f); n != i {
					t.Fatalf("%d logins before handover %d, want %d", n, i, i)
				}
				_, b := f.nextHandover()
				f.eventually("the session on the new token", 20*time.Second, func() bool { return f.current("s-session").bearer == b })
				f.settle(300 * time.Millisecond)
				old, cur := want[len(want)-1], f.current("s-session")
				if n := logins(f); n != i+1 || cur.session == old.session {
					t.Fatalf("handover %d: %d logins (want %d), session changed %v", i, n, i+1, cur.session != old.session)
				}
				if !f.works(old) || !f.works(cur) {
					t.Fatalf("handover %d, within the window: old pair works %v, new pair works %v; want both", i, f.works(old), f.works(cur))
				}
				if mixed := (pair{b, old.session}); f.works(mixed) == tied {
					t.Fatalf("handover %d: the old session with the new token works %v on a platform tied=%v", i, f.works(mixed), tied)
				}
				want = append(want, cur)
				f.walkValid("s-session", 10*time.Minute, 5*time.Minute) // past the replaced token's expiry
				if f.works(old) {
					t.Fatalf("handover %d: the replaced pair works after its token expired", i)
				}
			}
			if n := logins(f); n != 3 {
				t.Fatalf("%d logins after two handovers, want 3", n)
			}
			pairs := stop()
			if len(pairs) != len(want) {
				t.Fatalf("the Secret held %d distinct pairs, want %d (each handover one write of both headers)", len(pairs), len(want))
			}
			for i := range want {
				if pairs[i] != want[i] {
					t.Fatalf("pair %d is not the one expected: a write changed one header alone", i)
				}
			}
		})
	}
}

// Under one key set the new app token only arrives once the old one has expired: no login of its own
// (untied: one login for all time), and on a tied platform the SessionToken error re-logs in once per
// rotation, as before.
func TestM2MOneKeySetLoginsAsBefore(t *testing.T) {
	for _, tied := range []bool{false, true} {
		t.Run(map[bool]string{false: "untied", true: "tied"}[tied], func(t *testing.T) {
			f := newFixture(t, simulator.Config{TokenLifetime: handoverLifetime, M2MSessionTiedToBearer: tied})
			handoverWorld(f, false)
			f.create(newSession("s"))
			f.waitCondition("s", &v1alpha1.M2MSession{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
			f.settle(300 * time.Millisecond)
			f.walk(150*time.Minute, 5*time.Minute) // two rotations of the app token
			want := 1
			if tied {
				want = 3
			}
			if n := logins(f); n != want {
				t.Fatalf("%d logins across two rotations, want %d", n, want)
			}
			if p := f.current("s-session"); !f.works(p) {
				t.Fatal("the Secret's pair does not work")
			}
		})
	}
}

// failLogins puts a front before the fixture's simulator that answers every M2M login 503 while the
// returned switch is on, counting them; the app and the workload checks go through it too.
func failLogins(f *fixture) (on *atomic.Bool, failed *atomic.Int32) {
	on, failed = &atomic.Bool{}, &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if on.Load() && r.Method == http.MethodPost && r.URL.Path == "/api/m2m/v1/session/login" {
			failed.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"fault":{"code":"900800","message":"Message throttled out","description":"try later"}}`))
			return
		}
		f.sim.ServeHTTP(w, r)
	}))
	f.t.Cleanup(srv.Close)
	f.url = srv.URL
	return on, failed
}

// A handover login that fails costs nothing: the Secret keeps the old pair (which works until its token
// expires), the retries land before that, none counts towards the lockout, and once the platform
// answers again one login swaps both headers. A refused password at a handover is one failed login,
// never repeated.
func TestM2MFailedHandoverKeepsTheOldPair(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: handoverLifetime, M2MSessionTiedToBearer: true})
	down, failed := failLogins(f)
	handoverWorld(f, true)
	f.create(newSession("s"))
	f.waitCondition("s", &v1alpha1.M2MSession{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.settle(300 * time.Millisecond)
	f.walkValidTo("s-session", f.tsApp("app").Status.NextHandoverTime.Time, 5*time.Minute)
	first := f.current("s-session")
	_, oldExpiry := f.appToken("app")

	down.Store(true)
	f.nextHandover()
	f.eventually("a handover login tried", 20*time.Second, func() bool { return failed.Load() >= 1 })
	f.walkValid("s-session", 3*time.Minute, 30*time.Second)
	if n := failed.Load(); n < 2 {
		t.Fatalf("%d handover logins within 3 minutes, want retries", n)
	}
	if got := f.current("s-session"); got != first {
		t.Fatal("a failed handover login changed the Secret")
	}
	sess := &v1alpha1.M2MSession{}
	f.get("s", sess)
	if sess.Status.NextKeepAliveTime == nil || !sess.Status.NextKeepAliveTime.Time.Before(oldExpiry) {
		t.Fatalf("next try at %v, after the old token's expiry %v", sess.Status.NextKeepAliveTime, oldExpiry)
	}
	if info, _ := f.sim.M2MUser(uwsUser); info.ConsecutiveFailures != 0 || sess.Status.ConsecutiveLoginFailures != 0 {
		t.Fatalf("transient failures counted towards the lockout: %+v", info)
	}

	down.Store(false)
	f.eventually("the handover after the platform recovered", 20*time.Second, func() bool {
		if f.current("s-session") != first {
			return true
		}
		f.step(10 * time.Second) // the next retry slot
		return false
	})
	if n := logins(f); n != 2 {
		t.Fatalf("%d logins, want 2", n)
	}
	f.walkValid("s-session", 5*time.Minute, time.Minute) // past the old token's expiry

	// The password changed behind the operator's back: the next handover's login is refused once.
	f.sim.SetM2MUser(uwsUser, "An0ther!Passw0rd")
	f.walkValidTo("s-session", f.tsApp("app").Status.NextHandoverTime.Time, 5*time.Minute)
	f.nextHandover()
	f.eventually("the refused handover login", 20*time.Second, func() bool {
		info, _ := f.sim.M2MUser(uwsUser)
		return info.ConsecutiveFailures == 1
	})
	f.walk(30*time.Minute, 5*time.Minute)
	if info, _ := f.sim.M2MUser(uwsUser); info.ConsecutiveFailures != 1 || info.Logins != 2 {
		t.Fatalf("after a refused handover login: %d consecutive failures (want 1), %d logins (want 2)", info.ConsecutiveFailures, info.Logins)
	}
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonLoginRejected)
}
