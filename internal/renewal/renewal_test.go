package renewal

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func TestExpiryAnchorsAtReceiveTimeInMilliseconds(t *testing.T) {
	got := Expiry(t0.Add(700*time.Millisecond+300*time.Microsecond), 3600*time.Second)
	if want := t0.Add(time.Hour + 700*time.Millisecond); !got.Equal(want) {
		t.Fatalf("Expiry = %v, want %v", got, want)
	}
	if Truncate(got) != t0.Add(time.Hour) {
		t.Fatalf("Truncate(%v) should drop to the second", got)
	}
}

func TestRenewalTime(t *testing.T) {
	issued, expires := t0, t0.Add(time.Hour)
	if got := RenewalTime(issued, expires.Add(250*time.Millisecond), 0, 0); !got.Equal(expires.Add(250 * time.Millisecond)) {
		t.Fatalf("unset renewBefore must renew at the precise expiry, got %v", got)
	}
	cases := []struct {
		name        string
		renewBefore time.Duration
		jitter      float64
		want        time.Time
	}{
		{"unset renews at expiry", 0, 0.9, expires},
		{"window ahead of expiry", 10 * time.Minute, 0, expires.Add(-10 * time.Minute)},
		{"jitter moves earlier by at most a tenth of the window", 10 * time.Minute, 0.5, expires.Add(-10*time.Minute - 30*time.Second)},
		{"jitter just below one", 10 * time.Minute, 0.9999999, expires.Add(-11 * time.Minute)},
		{"jitter out of range is clamped", 10 * time.Minute, 7, expires.Add(-11 * time.Minute)},
		{"negative jitter is none", 10 * time.Minute, -1, expires.Add(-10 * time.Minute)},
		{"window equal to lifetime is clamped to a third", time.Hour, 0, issued.Add(40 * time.Minute)},
		{"window longer than lifetime is clamped", 2 * time.Hour, 0, issued.Add(40 * time.Minute)},
		{"seconds-long windows for tests", 2 * time.Second, 0, expires.Add(-2 * time.Second)},
		{"sub-second results are truncated", 1500 * time.Millisecond, 0, expires.Add(-2 * time.Second)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := RenewalTime(issued, expires, tc.renewBefore, tc.jitter)
			if !got.Equal(tc.want) {
				t.Fatalf("RenewalTime = %v, want %v", got, tc.want)
			}
			if !got.Before(expires) && tc.renewBefore > 0 {
				t.Fatalf("renewal %v not before expiry %v", got, expires)
			}
			if got.Before(issued) {
				t.Fatalf("renewal %v before issue %v: would loop", got, issued)
			}
		})
	}
}

func TestFractionRenewalTime(t *testing.T) {
	issued, expires := t0, t0.Add(90*time.Minute)
	if got, want := FractionRenewalTime(issued, expires, 2.0/3, 0), t0.Add(time.Hour); !got.Equal(want) {
		t.Fatalf("no jitter: got %v want %v", got, want)
	}
	if got, want := FractionRenewalTime(issued, expires, 2.0/3, 0.5), t0.Add(time.Hour-270*time.Second); !got.Equal(want) {
		t.Fatalf("half jitter: got %v want %v", got, want)
	}
	if got := FractionRenewalTime(expires, issued, 2.0/3, 0); !got.Equal(issued) {
		t.Fatalf("non-positive lifetime renews at expiry, got %v", got)
	}
}

// Issue 14: a plain token was dead up to a second after its expiry while the operator waited a whole
// second after each expires_in 0 answer. Within the contract's last second it asks every 250 ms, and
// one second after the first such answer the token is dead for certain.
func TestSameTokenRetry(t *testing.T) {
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	cases := []struct {
		name      string
		received  time.Time
		expiresIn time.Duration
		zeroSince time.Time
		want      time.Time
	}{
		{"time left: then", t0, 3 * time.Second, time.Time{}, ms(3000)},
		{"the first expires_in 0", t0, 0, time.Time{}, ms(250)},
		{"the second", ms(250), 0, t0, ms(500)},
		{"the fourth: at the second's end", ms(750), 0, t0, ms(1000)},
		{"late answers: never past the second's end", ms(900), 0, t0, ms(1000)},
		{"past the second (a lagging gateway): once a second", ms(1000), 0, t0, ms(2000)},
		{"negative expires_in is none left", t0, -time.Second, time.Time{}, ms(250)},
	}
	for _, c := range cases {
		if got := SameTokenRetry(c.received, c.received, c.expiresIn, c.zeroSince); !got.Equal(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got.Sub(t0), c.want.Sub(t0))
		}
	}
	// Bounded: from the first expires_in 0 answer, at most 4 more calls before the second is over.
	at, n := t0, 0
	for at.Before(ms(1000)) {
		at = SameTokenRetry(at, at, 0, t0)
		n++
	}
	if n != 4 {
		t.Errorf("%d calls in the last second after the first expires_in 0, want 4", n)
	}
}

// A slow answer (a round trip of SameTokenPoll or more) counts from its send time: the upstream may
// have answered at once and the answer been held on its way back (issue 14, seed 66: a token died 2 s
// before the expiry counted from the receive time of an answer held 3 s). A quick one counts from its
// receive time, so a renewal at that expiry gets the new token in one call.
func TestAnchorAndSlowAnswers(t *testing.T) {
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	if got := Anchor(t0, ms(249)); !got.Equal(ms(249)) {
		t.Errorf("quick answer: anchored at %v, want its receive time", got.Sub(t0))
	}
	if got := Anchor(t0, ms(3000)); !got.Equal(t0) {
		t.Errorf("slow answer: anchored at %v, want its send time", got.Sub(t0))
	}
	if got := Expiry(Anchor(t0, ms(3000)), 55*time.Second); !got.Equal(ms(55000)) {
		t.Errorf("slow answer's expiry %v, want 55s after the send", got.Sub(t0))
	}
	cases := []struct {
		name           string
		sent, received time.Time
		expiresIn      time.Duration
		zeroSince      time.Time
		want           time.Time
	}{
		{"slow, time left: from the send", t0, ms(3000), 5 * time.Second, time.Time{}, ms(5000)},
		{"slow, expires_in 0: the poll is due at once", t0, ms(600), 0, time.Time{}, ms(250)},
		{"slow, expires_in 0, the second over: once a second from the receipt", t0, ms(1500), 0, ms(400), ms(2500)},
	}
	for _, c := range cases {
		if got := SameTokenRetry(c.sent, c.received, c.expiresIn, c.zeroSince); !got.Equal(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got.Sub(t0), c.want.Sub(t0))
		}
	}
}

func TestRetryDelay(t *testing.T) {
	b := Backoff{Base: time.Second, Cap: time.Minute, Factor: 2, Jitter: 0.2}
	cases := []struct {
		name        string
		failures    int32
		rnd         float64
		retryAfter  time.Duration
		untilExpiry time.Duration
		want        time.Duration
	}{
		{"first failure", 1, 0, 0, 0, time.Second},
		{"zero failures counts as one", 0, 0, 0, 0, time.Second},
		{"grows exponentially", 4, 0, 0, 0, 8 * time.Second},
		{"jitter shortens", 4, 0.5, 0, 0, 7200 * time.Millisecond},
		{"capped", 30, 0, 0, 0, time.Minute},
		{"huge failure count stays capped", 1 << 30, 0, 0, 0, time.Minute},
		{"pulled in before expiry", 6, 0, 0, 20 * time.Second, 10 * time.Second},
		{"retry-after honoured over backoff", 1, 0, 30 * time.Second, 0, 30 * time.Second},
		{"retry-after honoured over expiry pull-in", 6, 0, 15 * time.Second, 20 * time.Second, 15 * time.Second},
		{"never below the floor", 1, 0, 0, 10 * time.Millisecond, MinRetryDelay},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := b.RetryDelay(tc.failures, tc.rnd, tc.retryAfter, tc.untilExpiry); got != tc.want {
				t.Fatalf("RetryDelay = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRefreshTime(t *testing.T) {
	issued, expires := t0, t0.Add(time.Hour)
	cases := []struct {
		name                   string
		renewBefore, keepAlive time.Duration
		jitter                 float64
		want                   time.Time
	}{
		{"default: two thirds of the lifetime", 0, 0, 0, issued.Add(40 * time.Minute)},
		{"default with jitter moves earlier by up to a tenth of the lifetime", 0, 0, 0.5, issued.Add(37 * time.Minute)},
		{"renewBefore ahead of expiry", 5 * time.Minute, 0, 0, expires.Add(-5 * time.Minute)},
		{"renewBefore not shorter than the lifetime falls back to two thirds", 3 * time.Hour, 0, 0, issued.Add(40 * time.Minute)},
		{"keep-alive shorter than the plan wins", 0, 10 * time.Second, 0.9, issued.Add(10 * time.Second)},
		{"keep-alive longer than the plan changes nothing", 5 * time.Minute, 168 * time.Hour, 0, expires.Add(-5 * time.Minute)},
	}
	for _, c := range cases {
		if got := RefreshTime(issued, expires, c.renewBefore, c.keepAlive, c.jitter); !got.Equal(c.want) {
			t.Errorf("%s: RefreshTime = %v, want %v", c.name, got, c.want)
		}
	}
}

// Issue 8 scenario 1: a window close to the lifetime plus jitter must never plan the renewal before
// the token was issued (or right after it): each pass would then revoke and refetch, killing the token
// for every holder of the key. Windows from 0 to past the lifetime, every jitter, several lifetimes
// and sub-second issue times.
func TestScenario1RenewalNeverPrecedesIssuePlusMinimum(t *testing.T) {
	for _, lifetime := range []time.Duration{time.Hour, 4 * time.Second, 1500 * time.Millisecond, time.Second} {
		for _, issuedAt := range []time.Time{t0, t0.Add(700 * time.Millisecond)} {
			expires := issuedAt.Add(lifetime)
			floor := issuedAt.Add(minUseOf(lifetime))
			for step := 0; step <= 24; step++ {
				rb := lifetime * time.Duration(step) / 20 // 0 … 120% of the lifetime
				for _, jitter := range []float64{0, 0.5, 0.999999} {
					got := RenewalTime(issuedAt, expires, rb, jitter)
					if got.Before(floor) {
						t.Errorf("lifetime %v, issued %v, renewBefore %v, jitter %v: renewal %v is before issue+%v (%v)",
							lifetime, issuedAt.Format("15:04:05.000"), rb, jitter, got.Format("15:04:05.000"), minUseOf(lifetime), floor.Format("15:04:05.000"))
					}
					if got.After(expires) {
						t.Errorf("lifetime %v, renewBefore %v, jitter %v: renewal %v after expiry %v", lifetime, rb, jitter, got, expires)
					}
				}
			}
		}
	}
	// The issue's example: a 1 h token, renewBefore 58m, jitter 0.5.
	if got := RenewalTime(t0, t0.Add(time.Hour), 58*time.Minute, 0.5); got.Before(t0.Add(6 * time.Minute)) {
		t.Fatalf("1h token, renewBefore 58m, jitter 0.5: renewal at %v, %v after issue", got, got.Sub(t0))
	}
}

func minUseOf(lifetime time.Duration) time.Duration {
	return time.Duration(MinUseFraction * float64(lifetime))
}
