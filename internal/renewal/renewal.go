// Package renewal holds the timing decisions of the operator as pure functions of (issued, expires,
// spec, now): when to renew a credential and how long to back off after a failure. Nothing here reads a
// clock or a random source of its own; callers pass both in, so every decision is testable with fixed
// values.
package renewal

import (
	"math"
	"time"
)

// Precision is the resolution of the instants the operator acts on and publishes in Secrets (RFC 3339
// with milliseconds). Kubernetes status times are whole seconds; they are for people to read, and every
// comparison against them is made at whole seconds (see Truncate), so a value never fails to match
// itself after a round trip (cert-manager #4345).
const Precision = time.Millisecond

// Truncate rounds t down to the whole second, the precision of status times: earlier is the safe side.
func Truncate(t time.Time) time.Time { return t.Truncate(time.Second) }

// Expiry is when a credential answered with expiresIn expires, counted from anchor (see Anchor).
func Expiry(anchor time.Time, expiresIn time.Duration) time.Time {
	return anchor.Add(expiresIn).Truncate(Precision)
}

// Anchor is the instant an answer's expires_in counts from, for a request sent at sent and answered at
// received: the upstream computed it somewhere between the two.
//
// The receive time errs late by the answer's way back, the send time early by the request's way
// there. Late means a dead credential in the Secret: the chaos suite's answers held 3 s after the
// upstream acted made a token die 2 s before the expiry published for it (issue 14, seed 66). Early
// only costs an ask that gets the same token again, with a tighter expires_in (SameTokenRetry). So a
// quick round trip (under SameTokenPoll, less than a poll's wait) counts from the receive time, and a
// renewal at that moment gets the new token in one call; a slow one counts from the send time.
func Anchor(sent, received time.Time) time.Time {
	if received.Sub(sent) < SameTokenPoll {
		return received
	}
	return sent
}

// MaxJitter is the largest share of the renew-before window that jitter moves a renewal earlier, so
// objects created together do not renew together.
const MaxJitter = 0.1

// RenewalTime is when a token issued at issued and expiring at expires should be replaced.
//
// renewBefore of zero means "at expiry": the upstream hands out the same token until it expires, so
// asking earlier gains nothing. Otherwise the token is renewed renewBefore ahead of expiry, moved earlier
// by jitter (a value in [0,1), times MaxJitter of the window). A window not shorter than the lifetime
// would renew in a loop (cert-manager #3396), so it is clamped to a third of the lifetime. Whatever the
// window and jitter, the renewal is never planned before MinUseFraction of the lifetime has passed: a
// renewal at or before issue revokes and refetches on every pass, killing the token for every holder of
// the key (issue 8 scenario 1).
func RenewalTime(issued, expires time.Time, renewBefore time.Duration, jitter float64) time.Time {
	if renewBefore <= 0 {
		return expires
	}
	lifetime := expires.Sub(issued)
	if lifetime <= 0 {
		return expires // nothing left to plan: renew now
	}
	if renewBefore >= lifetime {
		renewBefore = lifetime / 3
	}
	window := renewBefore + time.Duration(clamp01(jitter)*MaxJitter*float64(renewBefore))
	t := Truncate(expires.Add(-window))
	if floor := issued.Add(time.Duration(MinUseFraction * float64(lifetime))); t.Before(floor) {
		// Rounded up to the whole second (the precision of status times), but never past expiry.
		if t = Truncate(floor); t.Before(floor) {
			t = t.Add(time.Second)
		}
		if t.After(expires) {
			t = expires
		}
	}
	return t
}

// MinUseFraction is the share of its lifetime a token is used at least before a renewBefore window
// replaces it (see RenewalTime).
const MinUseFraction = 0.1

// FractionRenewalTime is when to renew a credential at fraction of its lifetime, moved earlier by up to
// MaxJitter of the lifetime. It serves upstreams whose tokens should be refreshed well ahead of expiry
// (rotating OAuth2 refresh tokens) when the user set no explicit window.
func FractionRenewalTime(issued, expires time.Time, fraction, jitter float64) time.Time {
	lifetime := expires.Sub(issued)
	if lifetime <= 0 {
		return Truncate(expires)
	}
	// Rounded to the millisecond first so float error cannot push a whole-second result down a second.
	offset := time.Duration((fraction - clamp01(jitter)*MaxJitter) * float64(lifetime)).Round(time.Millisecond)
	return Truncate(issued.Add(offset))
}

// SameTokenRetry is when to ask again after the upstream answered a request sent at sent, at received,
// with the token it was supposed to replace: it has not expired upstream yet. expiresIn is what the
// upstream said is left, in whole seconds rounded down, counted from Anchor(sent, received); zeroSince
// is when the first answer for this token with nothing left (expires_in 0) arrived, zero when this is
// the first.
//
// With time left the token lives at least that long: ask again then. With none left it dies within
// the second (a request in a token's last second gets it with expires_in 0, and a new token only once
// it is dead, thingspace-api.md §1), so it is asked for every SameTokenPoll from the anchor until one
// second after the first such answer, when it is dead for certain: the new token lands at most
// SameTokenPoll after the real expiry, for at most 1s/SameTokenPoll = 4 calls that get the old token
// again (only when the token's expiry came from a rounded-down answer; none when it came fresh). A slow
// answer's next ask may so be due at once. Past that second the gateway lags the contract (a clock or
// rounding of its own): once every MinSameTokenRetry.
func SameTokenRetry(sent, received time.Time, expiresIn time.Duration, zeroSince time.Time) time.Time {
	anchor := Anchor(sent, received)
	if expiresIn > 0 {
		return anchor.Add(max(expiresIn, MinSameTokenRetry))
	}
	first := zeroSince
	if first.IsZero() || first.After(received) {
		first = received
	}
	if dead := first.Add(time.Second); received.Before(dead) {
		if next := anchor.Add(SameTokenPoll); next.Before(dead) {
			return next
		}
		return dead
	}
	return received.Add(MinSameTokenRetry)
}

// SameTokenPoll is how often a token answered with expires_in 0 is asked for again within its last
// second; see SameTokenRetry.
const SameTokenPoll = 250 * time.Millisecond

// MinSameTokenRetry is the wait after a same-token answer with time left, and past the contract's last
// second; see SameTokenRetry.
const MinSameTokenRetry = time.Second

// Backoff parameters for transient upstream failures: capped exponential with jitter, like the
// anchors in the field (VSO 5s→60s ×1.5; the controller-runtime default has no jitter and no cap
// short enough for one-hour tokens).
type Backoff struct {
	// Base is the wait after the first failure.
	Base time.Duration
	// Cap bounds the wait.
	Cap time.Duration
	// Factor multiplies the wait per further failure.
	Factor float64
	// Jitter is the share of the wait that is randomised away (0.2 → the wait is 80–100% of nominal).
	Jitter float64
}

// DefaultBackoff is the backoff the controllers use.
var DefaultBackoff = Backoff{Base: time.Second, Cap: 5 * time.Minute, Factor: 2, Jitter: 0.2}

// RetryDelay is how long to wait after the failures-th consecutive failure (1 for the first).
//
// rnd is a value in [0,1). retryAfter, when positive, is the upstream's own Retry-After and is always
// honoured. untilExpiry, when positive, is how long the credential in use stays valid: the next try is
// pulled in to halfway there, so that several tries land before it expires.
func (b Backoff) RetryDelay(failures int32, rnd float64, retryAfter, untilExpiry time.Duration) time.Duration {
	if failures < 1 {
		failures = 1
	}
	nominal := float64(b.Base) * math.Pow(b.Factor, float64(failures-1))
	if nominal > float64(b.Cap) || math.IsInf(nominal, 0) || math.IsNaN(nominal) {
		nominal = float64(b.Cap)
	}
	d := time.Duration(nominal * (1 - clamp01(rnd)*b.Jitter))
	if untilExpiry > 0 && d > untilExpiry/2 {
		d = untilExpiry / 2
	}
	// Retry-After wins over the expiry pull-in: asking earlier than the upstream allows only earns
	// another refusal.
	d = max(d, retryAfter)
	return max(d, MinRetryDelay)
}

// MinRetryDelay keeps a failing object from spinning, whatever the inputs.
const MinRetryDelay = 100 * time.Millisecond

func clamp01(v float64) float64 {
	switch {
	case v < 0 || math.IsNaN(v):
		return 0
	case v >= 1:
		return math.Nextafter(1, 0)
	}
	return v
}

// DefaultRefreshFraction is the share of an access token's lifetime after which a rotating OAuth2
// grant is refreshed when the user set no window: the old token then still has a third of its life
// while the new one propagates to workloads.
const DefaultRefreshFraction = 2.0 / 3

// RefreshTime is when to refresh a rotating OAuth2 grant whose access token was issued at issued and
// expires at expires: renewBefore ahead of expiry when set (see RenewalTime), else at
// DefaultRefreshFraction of the lifetime, and in any case no later than keepAlive after issued, so a
// refresh token that dies unused is used in time (zero keepAlive: no such bound).
func RefreshTime(issued, expires time.Time, renewBefore, keepAlive time.Duration, jitter float64) time.Time {
	var t time.Time
	if renewBefore > 0 {
		t = RenewalTime(issued, expires, renewBefore, jitter)
	} else {
		t = FractionRenewalTime(issued, expires, DefaultRefreshFraction, jitter)
	}
	if keepAlive > 0 {
		if k := Truncate(issued.Add(keepAlive)); k.Before(t) {
			t = k
		}
	}
	return t
}
