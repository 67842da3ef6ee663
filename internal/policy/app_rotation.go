package policy

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// A renewBefore rotation revokes the token first (the platform hands out the same token until then)
// and fetches the next one after: between the two the Secret holds a dead token, for as long as the
// fetch takes, retries included. The chaos suite found a rotation started into a storm (503/429 with
// Retry-After, timeouts) leaving the token dead through the retries (issue 14). So a rotation starts
// only while the upstream looks able to answer, and after a revoke the fetch is retried as soon as the
// upstream allows.

// RotationCheck says whether a due renewBefore rotation may revoke now.
type RotationCheck struct {
	Rotate bool
	// Next, when not Rotate, is when to look again: the end of the key's Retry-After, or the token's
	// expiry (a plain renewal then, which revokes nothing).
	Next time.Time
	// Why, when not Rotate, says what the rotation waits for (for the Ready message).
	Why string
}

// CheckRotation decides whether the renewBefore rotation of cur (due at now) may revoke it. Inside the
// key's Retry-After (notBefore) it waits for its end, and while the key's last upstream call failed
// transiently (lastFailed) it does not rotate at all: cur is valid until it expires, so nothing is lost
// by keeping it, and when the wait reaches the expiry the token is renewed plainly then. A refresh a
// person asked for is not this decision's: it revokes as asked (a leaked token must end).
func CheckRotation(cur AppToken, notBefore time.Time, lastFailed bool, now time.Time) RotationCheck {
	switch {
	case now.Before(notBefore) && notBefore.Before(cur.ExpiresAt):
		return RotationCheck{Next: notBefore,
			Why: "the renewBefore rotation waits for the upstream's Retry-After, until " + stamp(notBefore)}
	case now.Before(notBefore):
		return RotationCheck{Next: cur.ExpiresAt,
			Why: "renewed when it expires: the upstream asked not to be called before " + stamp(notBefore)}
	case lastFailed:
		return RotationCheck{Next: cur.ExpiresAt,
			Why: "renewed when it expires, not before: the last call for its key failed, and a rotation revokes the token before fetching the next"}
	}
	return RotationCheck{Rotate: true}
}

// appRetrySlot is RetrySlot for a ThingSpaceApp: the slot in status is whole seconds, rounded up from
// the upstream's Retry-After; while the broker still remembers that Retry-After (notBefore, kept until
// its second has passed), a slot no later than its second ends at notBefore itself, to the instant.
func appRetrySlot(st *v1alpha1.ThingSpaceAppStatus, notBefore, now time.Time) (time.Time, bool) {
	at, ok := RetrySlot(st.FailedRefreshAttempts, st.RenewalTime, now)
	if !ok || notBefore.IsZero() || at.After(ceilSecond(notBefore)) {
		return at, ok
	}
	if !now.Before(notBefore) {
		return time.Time{}, false
	}
	return notBefore, true
}

// RevokedRetry plans the retry after the failures-th failure to get the next token once the token it
// replaces was revoked: the Secret holds a dead token, so every second waited is a dead second, and
// the retry comes when the upstream allows, not after a longer backoff. With a Retry-After that is its
// end, to the instant (Delay; At, for status, is rounded up to the whole second so a pass after a
// restart never calls inside it); without one a short backoff from renewal.MinRetryDelay doubling up
// to b.Base (a failing upstream is not hammered).
func RevokedRetry(b renewal.Backoff, failures int32, err error, now time.Time) Retry {
	d := renewal.MinRetryDelay
	for i := int32(1); i < failures && d < b.Base; i++ {
		d *= 2
	}
	d = min(d, max(b.Base, renewal.MinRetryDelay))
	at := now.Add(d)
	if ra, ok := upstream.RetryAfterOf(err); ok {
		d, at = ra, ceilSecond(now.Add(ra))
	}
	return Retry{Delay: d, At: at, Reason: v1alpha1.ReasonUpstreamUnavailable,
		Message: fmt.Sprintf("No valid token: %s (attempt %d); next try at %s", err.Error(), failures, at.UTC().Format(time.RFC3339))}
}

// ExpiredRetry plans the retry after the failures-th failure to replace a token that has expired (the
// Secret holds it, dead): as after a revoke, every second waited is a dead second, so a Retry-After is
// waited to the instant (At, for status, rounded up to the whole second), not to the next whole
// second after it (the chaos suite: a plain token retried 1.3 s after a 2 s Retry-After ended); and
// the backoff starts at renewal.MinRetryDelay (a dropped answer's repeat brings the same token at
// once). It still doubles up to b.Cap with b's jitter: a fleet whose tokens expired in a long outage
// does not call once a second per app.
func ExpiredRetry(b renewal.Backoff, failures int32, rnd float64, err error, now time.Time) Retry {
	fast := b
	fast.Base = renewal.MinRetryDelay
	ra, _ := upstream.RetryAfterOf(err)
	d := fast.RetryDelay(failures, rnd, ra, 0)
	at := now.Add(d)
	if ra > 0 && d == ra {
		at = ceilSecond(at)
	}
	return Retry{Delay: d, At: at, Reason: v1alpha1.ReasonUpstreamUnavailable,
		Message: fmt.Sprintf("No valid token: %s (attempt %d); next try at %s", err.Error(), failures, at.UTC().Format(time.RFC3339))}
}

func ceilSecond(t time.Time) time.Time {
	if s := renewal.Truncate(t); s.Before(t) {
		return s.Add(time.Second)
	}
	return t
}

// RetryAtOnce says whether a failed token call is repeated at once, in the same pass: when the Secret
// holds a dead token (this pass revoked it, or it expired) and the failure says nothing about when to
// call again (a dropped connection, a timeout, a 5xx without Retry-After). A token request is
// idempotent (the platform hands out the key's current token), and every moment before the retry is
// a moment of a dead token: the chaos suite counted the 100-200 ms of RevokedRetry's first backoff,
// plus the status write before it, as avoidable (issue 14, seed 55). Once only: a second failure backs
// off as before. A 429, a Retry-After or a refusal is never repeated at once.
func RetryAtOnce(err error, held AppToken, revoked bool, now time.Time) bool {
	if held.AccessToken == "" || (!revoked && now.Before(held.ExpiresAt)) {
		return false
	}
	e, ok := errors.AsType[*upstream.Error](err)
	if !ok || e.Kind != upstream.Transient || e.StatusCode == http.StatusTooManyRequests {
		return false
	}
	_, throttled := upstream.RetryAfterOf(err)
	return !throttled
}

// RecordedRenewal is the renewalTime a successful pass records when it plans to look again at next.
// While the platform answers with the token it was asked to replace (sameToken: a poll in the token's
// last second, a revoke not yet in effect), a renewalTime already due stays as it is: it still says a
// call is due (after a restart too), and moving it by a poll's fraction of a second costs a status
// write per poll, a write that, slow, held the next poll back past the token's death (chaos seed 66:
// 1.2 s). Otherwise next, as ever.
func RecordedRenewal(recorded *metav1.Time, next time.Time, sameToken bool, now time.Time) time.Time {
	if sameToken && recorded != nil && !recorded.After(now) {
		return recorded.Time
	}
	return next
}
