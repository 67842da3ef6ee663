package fakeclock

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// revokeDirect revokes token at the simulator the way another holder of the key would (a renewBefore
// rotation elsewhere): the operator is not told.
func (f *fixture) revokeDirect(token string) {
	f.t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/api/ts/v1/oauth2/revoke", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(f.key, f.secret)
	rec := httptest.NewRecorder()
	f.sim.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || f.sim.ValidBearer(token) {
		f.t.Fatalf("direct revoke: %d, still valid %v", rec.Code, f.sim.ValidBearer(token))
	}
}

// Issue 14 (chaos): an M2MSession whose app token was revoked got a 401 on its keep-alive and waited
// out its Bearer-rejected backoff (up to 10 s in the chaos run) although its app's Secret already held
// the new token. The wait is for the refused token: the app publishing another ends it at once (here
// without the fake clock moving at all), while the same token is never sent again before the slot.
func TestM2MBearerWaitEndsWithTheAppsNewToken(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: 24 * time.Hour})
	m2mWorld(f)
	f.create(newSession("s"))
	sess := &v1alpha1.M2MSession{}
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.settle(300 * time.Millisecond)
	revoked, _ := f.appToken("app")
	f.get("s", sess)

	// The app's token is revoked behind the operator's back; the keep-alive meets the 401, the broker
	// gets the key a new token, and the app publishes it.
	f.revokeDirect(revoked)
	f.stepTo(sess.Status.NextKeepAliveTime.Time)
	f.eventually("the keep-alive's 401", 20*time.Second, func() bool { return f.sim.Stats().Total(accountRoute) >= 1 })
	var fresh string
	f.eventually("the app's new token", 20*time.Second, func() bool {
		fresh, _ = f.appToken("app")
		return fresh != "" && fresh != revoked
	})
	// No step: the session keeps alive with the new token as soon as the app holds it.
	f.eventually("the session on the app's new token", 20*time.Second, func() bool { return f.current("s-session").bearer == fresh })
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.settle(300 * time.Millisecond)
	st := f.sim.Stats()
	if n := st.Total(accountRoute); n != 2 {
		t.Fatalf("%d keep-alives, want 2 (the refused one, one with the new token)", n)
	}
	if n := st.Total(loginRoute); n != 1 {
		t.Fatalf("%d logins, want 1: a Bearer refusal is not the session's", n)
	}
	f.get("s", sess)
	if sess.Status.FailedAttempts != 0 || sess.Status.RejectedTokenDigest != "" {
		t.Fatalf("status after the recovery: failedAttempts %d, rejectedTokenDigest %q", sess.Status.FailedAttempts, sess.Status.RejectedTokenDigest)
	}

	// The gateway refuses every Bearer: the refresh gets the same (live) token back, so the session
	// waits for its slot, sending nothing meanwhile.
	f.sim.SetM2MRejectBearers(true)
	f.stepTo(sess.Status.NextKeepAliveTime.Time)
	f.eventually("the keep-alive's 401", 20*time.Second, func() bool { return f.sim.Stats().Total(accountRoute) == 3 })
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBearerRejected)
	f.settle(500 * time.Millisecond)
	if n := f.sim.Stats().Total(accountRoute); n != 3 {
		t.Fatalf("%d keep-alives, want 3: the refused token was sent again before its slot", n)
	}
	f.get("s", sess)
	if sess.Status.RejectedTokenDigest != policy.TokenDigest(fresh) {
		t.Fatal("status.rejectedTokenDigest is not the refused token's digest")
	}
	f.sim.SetM2MRejectBearers(false)
	f.stepTo(sess.Status.NextKeepAliveTime.Time)
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	if n := f.sim.Stats().Total(accountRoute); n != 4 {
		t.Fatalf("%d keep-alives, want 4", n)
	}
	if p := f.current("s-session"); !f.works(p) {
		t.Fatal("the Secret's pair does not work")
	}
}

// failKeepAlives puts a front before f's simulator answering every keep-alive 503 with Retry-After 30
// while the returned switch is on.
func failKeepAlives(f *fixture) *atomic.Bool {
	on := &atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if on.Load() && r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/m2m/v1/accounts/") {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"fault":{"code":"900800","message":"Message throttled out","description":"try later"}}`))
			return
		}
		f.sim.ServeHTTP(w, r)
	}))
	f.t.Cleanup(srv.Close)
	f.url = srv.URL
	return on
}

// Issue 14 (chaos, seed 22): the app's token was revoked and replaced (a renewBefore rotation) while the
// session waited out a failed call's backoff; its Secret kept the revoked token until the retry. The
// Secret follows the app's token during the wait (no upstream call: the retry keeps its slot).
func TestM2MBackoffStillPublishesTheAppsNewToken(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: 24 * time.Hour})
	down := failKeepAlives(f)
	m2mWorld(f)
	f.create(newSession("s"))
	sess := &v1alpha1.M2MSession{}
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.settle(300 * time.Millisecond)
	f.get("s", sess)
	old, _ := f.appToken("app")

	down.Store(true)
	f.stepTo(sess.Status.NextKeepAliveTime.Time)
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable)
	f.settle(300 * time.Millisecond)
	down.Store(false)
	calls := f.sim.Stats().Total(accountRoute)

	// The app rotates its token (revoking the old one) within the session's backoff; no step.
	app := f.tsApp("app")
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	app.Annotations[v1alpha1.RefreshRequestedAnnotation] = "rotate-1"
	must(t, k8s.Update(context.Background(), app))
	var fresh string
	f.eventually("the app's new token", 20*time.Second, func() bool {
		fresh, _ = f.appToken("app")
		return fresh != "" && fresh != old
	})
	if f.sim.ValidBearer(old) {
		t.Fatal("the rotation did not revoke the old token")
	}
	f.eventually("the session's Secret on the app's new token", 20*time.Second, func() bool { return f.current("s-session").bearer == fresh })
	f.settle(300 * time.Millisecond)
	if n := f.sim.Stats().Total(accountRoute); n != calls {
		t.Fatalf("%d keep-alives within the backoff, want none", n-calls)
	}
	if p := f.current("s-session"); !f.works(p) {
		t.Fatal("the Secret's pair does not work")
	}
	f.get("s", sess)
	if c := f.condition("s", sess, v1alpha1.ConditionReady); c.Reason != v1alpha1.ReasonUpstreamUnavailable {
		t.Fatalf("Ready %s/%s during the backoff, want the failure's", c.Status, c.Reason)
	}
}
