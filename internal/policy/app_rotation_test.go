package policy

import (
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// Issue 14: a renewBefore rotation revoked the token and then met a storm, leaving the Secret's token
// dead through the retries. It revokes only while the upstream looks able to answer.
func TestCheckRotation(t *testing.T) {
	now := t0.Add(50 * time.Minute)
	cur := AppToken{AccessToken: "t1", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	cases := []struct {
		name      string
		notBefore time.Time
		failed    bool
		rotate    bool
		next      time.Time
		says      string
	}{
		{"healthy: rotate", time.Time{}, false, true, time.Time{}, ""},
		{"a Retry-After that has passed: rotate", now.Add(-time.Second), false, true, time.Time{}, ""},
		{"inside a Retry-After: wait for its end", now.Add(5 * time.Second), false, false, now.Add(5 * time.Second), "waits for the upstream's Retry-After"},
		{"inside a Retry-After reaching past the expiry: renew at expiry", cur.ExpiresAt.Add(time.Second), false, false, cur.ExpiresAt, "renewed when it expires"},
		{"a Retry-After ending at the expiry: renew at expiry", cur.ExpiresAt, false, false, cur.ExpiresAt, "renewed when it expires"},
		{"the last call failed: renew at expiry", time.Time{}, true, false, cur.ExpiresAt, "the last call for its key failed"},
		{"both: the Retry-After first", now.Add(5 * time.Second), true, false, now.Add(5 * time.Second), "Retry-After"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := CheckRotation(cur, c.notBefore, c.failed, now)
			if got.Rotate != c.rotate || !got.Next.Equal(c.next) || !strings.Contains(got.Why, c.says) {
				t.Fatalf("%+v", got)
			}
		})
	}
}

// DecideApp turns a due renewBefore rotation the upstream's state defers into a wait, never a revoke;
// a refresh a person asked for still rotates.
func TestDecideAppDefersTheRotation(t *testing.T) {
	tok := AppToken{AccessToken: "t1", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	now := t0.Add(56 * time.Minute) // the 5-minute window has begun
	in := func(mut func(*AppInput)) AppInput {
		i := AppInput{Generation: 1, RenewBefore: 5 * time.Minute, Status: &v1alpha1.ThingSpaceAppStatus{Conditions: readyTrue(1)},
			CredentialsVersion: "7", Held: tok, Current: tok, Now: now}
		mut(&i)
		return i
	}
	if d := DecideApp(in(func(*AppInput) {})); d.Step != AppRotate || d.Why != WhyRenewBefore {
		t.Fatalf("healthy: %+v", d)
	}
	d := DecideApp(in(func(i *AppInput) { i.LastCallFailed = true }))
	if d.Step != AppWait || !d.Next.Equal(tok.ExpiresAt) || d.Deferred == "" || d.Why != "" {
		t.Fatalf("after a failed call: %+v", d)
	}
	d = DecideApp(in(func(i *AppInput) { i.NotBefore = now.Add(3 * time.Second) }))
	if d.Step != AppWait || !d.Next.Equal(now.Add(3*time.Second)) || d.Deferred == "" {
		t.Fatalf("inside a Retry-After: %+v", d)
	}
	d = DecideApp(in(func(i *AppInput) {
		i.LastCallFailed = true
		i.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "r1"}
	}))
	if d.Step != AppRotate || d.Why != WhyRefreshRequested {
		t.Fatalf("a person's refresh request: %+v", d)
	}
}

// The retry slot in status is whole seconds, rounded up from the Retry-After; while the broker
// remembers the Retry-After itself, the slot ends at that instant.
func TestAppRetrySlot(t *testing.T) {
	nb := t0.Add(5*time.Second + 300*time.Millisecond)
	st := &v1alpha1.ThingSpaceAppStatus{}
	st.FailedRefreshAttempts = 1
	st.RenewalTime = mt(t0.Add(6 * time.Second))
	cases := []struct {
		name      string
		notBefore time.Time
		now       time.Time
		wait      bool
		at        time.Time
	}{
		{"no Retry-After known (a restart): the status slot", time.Time{}, nb, true, t0.Add(6 * time.Second)},
		{"before the Retry-After: wait for it", nb, t0.Add(5 * time.Second), true, nb},
		{"at the Retry-After: go", nb, nb, false, time.Time{}},
		{"a Retry-After seconds before the slot (a longer backoff): the slot", t0.Add(3 * time.Second), t0.Add(4 * time.Second), true, t0.Add(6 * time.Second)},
		{"past the slot: go", time.Time{}, t0.Add(6 * time.Second), false, time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			at, wait := appRetrySlot(st, c.notBefore, c.now)
			if wait != c.wait || !at.Equal(c.at) {
				t.Fatalf("got %v %v, want %v %v", at, wait, c.at, c.wait)
			}
		})
	}
}

// retryCase is a retry plan's expected delay and slot after failures failures ending in err.
type retryCase struct {
	name     string
	failures int32
	err      error
	delay    time.Duration
	at       time.Time
}

// After a revoke the fetch is retried when the upstream allows: at its Retry-After, to the instant, or
// without one after a short backoff, never the long one a valid token affords.
func TestRevokedRetry(t *testing.T) {
	b := renewal.DefaultBackoff
	now := t0.Add(200 * time.Millisecond)
	throttled := upstream.StatusError(thingspace.API, thingspace.EndpointToken, http.StatusServiceUnavailable, "900800", upstream.Transient, 3*time.Second)
	timeout := upstream.TransportError(thingspace.API, thingspace.EndpointToken, errTimeout{})
	cases := []retryCase{
		{"503 with Retry-After", 1, throttled, 3 * time.Second, t0.Add(4 * time.Second)},
		{"503 with Retry-After, many failures", 9, throttled, 3 * time.Second, t0.Add(4 * time.Second)},
		{"timeout, first", 1, timeout, 100 * time.Millisecond, now.Add(100 * time.Millisecond)},
		{"timeout, third", 3, timeout, 400 * time.Millisecond, now.Add(400 * time.Millisecond)},
		{"timeout, tenth: capped at the base", 10, timeout, time.Second, now.Add(time.Second)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := RevokedRetry(b, c.failures, c.err, now)
			if r.Delay != c.delay || !r.At.Equal(c.at) || r.Ready || r.Reason != v1alpha1.ReasonUpstreamUnavailable {
				t.Fatalf("%+v", r)
			}
		})
	}
	f := AppFailed(b, 4, 0, throttled, AppToken{AccessToken: "t1", ExpiresAt: t0.Add(time.Hour)}, true, now)
	if f.Terminal || f.Retry.Delay != 3*time.Second || !strings.Contains(f.Message, "revoked") {
		t.Fatalf("AppFailed after a revoke: %+v", f)
	}
}

type errTimeout struct{}

func (errTimeout) Error() string   { return "i/o timeout" }
func (errTimeout) Timeout() bool   { return true }
func (errTimeout) Temporary() bool { return true }

// A token that expired in the Secret is dead as a revoked one is: the retry comes at the Retry-After to
// the instant, and without one after a backoff from renewal.MinRetryDelay, doubling past the base.
func TestExpiredRetry(t *testing.T) {
	b := renewal.Backoff{Base: time.Second, Cap: time.Minute, Factor: 2}
	now := t0.Add(200 * time.Millisecond)
	throttled := upstream.StatusError(thingspace.API, thingspace.EndpointToken, http.StatusServiceUnavailable, "900800", upstream.Transient, 2*time.Second)
	reset := upstream.TransportError(thingspace.API, thingspace.EndpointToken, errTimeout{})
	expired := AppToken{AccessToken: "t1", ExpiresAt: t0}
	cases := []retryCase{
		{"503 with Retry-After: its end, not the next whole second", 1, throttled, 2 * time.Second, t0.Add(3 * time.Second)},
		{"a connection reset, first", 1, reset, 100 * time.Millisecond, now.Add(100 * time.Millisecond)},
		{"a connection reset, fifth: past the base", 5, reset, 1600 * time.Millisecond, now.Add(1600 * time.Millisecond)},
		{"a connection reset, twentieth: the cap", 20, reset, time.Minute, now.Add(time.Minute)},
		{"backoff beyond the Retry-After", 6, throttled, 3200 * time.Millisecond, now.Add(3200 * time.Millisecond)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := AppFailed(b, c.failures, 0, c.err, expired, false, now)
			if f.Retry.Delay != c.delay || !f.Retry.At.Equal(c.at) || f.Retry.Ready || f.Reason != v1alpha1.ReasonUpstreamUnavailable {
				t.Fatalf("%+v", f.Retry)
			}
		})
	}
	// A valid token keeps the plain backoff (rounded to the whole second).
	if f := AppFailed(b, 1, 0, reset, AppToken{AccessToken: "t1", ExpiresAt: t0.Add(time.Hour)}, false, now); f.Retry.Delay < 800*time.Millisecond || !f.Retry.Ready {
		t.Fatalf("valid token: %+v", f.Retry)
	}
}

// A dead token's failed fetch is repeated at once only when the failure names no wait: never for a
// valid token, a 429, a Retry-After or a refusal.
func TestRetryAtOnce(t *testing.T) {
	now := t0.Add(time.Second)
	reset := upstream.TransportError(thingspace.API, thingspace.EndpointToken, errTimeout{})
	bad := upstream.StatusError(thingspace.API, thingspace.EndpointToken, http.StatusBadGateway, "", upstream.Transient, 0)
	throttled := upstream.StatusError(thingspace.API, thingspace.EndpointToken, http.StatusServiceUnavailable, "900800", upstream.Transient, 2*time.Second)
	limited := upstream.StatusError(thingspace.API, thingspace.EndpointToken, http.StatusTooManyRequests, "", upstream.Transient, 0)
	refused := upstream.StatusError(thingspace.API, thingspace.EndpointToken, http.StatusUnauthorized, "invalid_client", upstream.Rejected, 0)
	expired := AppToken{AccessToken: "t1", ExpiresAt: t0}
	valid := AppToken{AccessToken: "t1", ExpiresAt: t0.Add(time.Hour)}
	cases := []struct {
		name    string
		err     error
		held    AppToken
		revoked bool
		want    bool
	}{
		{"expired, a reset", reset, expired, false, true},
		{"revoked, a 502", bad, valid, true, true},
		{"valid, a reset", reset, valid, false, false},
		{"no token held", reset, AppToken{}, true, false},
		{"expired, a Retry-After", throttled, expired, false, false},
		{"expired, a 429", limited, expired, false, false},
		{"expired, refused", refused, expired, false, false},
		{"expired, not an upstream error", errString("boom"), expired, false, false},
	}
	for _, c := range cases {
		if got := RetryAtOnce(c.err, c.held, c.revoked, now); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// A same-token answer keeps a renewalTime already due (no status write per poll); anything else
// records the plan.
func TestRecordedRenewal(t *testing.T) {
	now := t0.Add(10 * time.Second)
	next := now.Add(250 * time.Millisecond)
	due, ahead := mt(now.Add(-time.Second)), mt(now.Add(time.Minute))
	cases := []struct {
		name     string
		recorded *metav1.Time
		same     bool
		want     time.Time
	}{
		{"a poll, due already: kept", due, true, due.Time},
		{"a poll, the recorded one ahead: the plan", ahead, true, next},
		{"a poll, none recorded: the plan", nil, true, next},
		{"a new token: the plan", due, false, next},
	}
	for _, c := range cases {
		if got := RecordedRenewal(c.recorded, next, c.same, now); !got.Equal(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
