package policy

import (
	"time"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
)

// AppThrottled is what a ThingSpaceApp shows while the broker sends nothing for its key because the
// upstream asked not to be called before until (a Retry-After another holder's call, a session's
// refresh or the app's own call got; tokenbroker.ThrottledError): the condition a throttled call of its
// own shows (PlanRetry: RefreshFailing while the Secret's token is valid, UpstreamUnavailable once it
// is not, or was revoked), with until as the next try. Nothing was sent, so no failure is counted.
//
// At is until rounded up to the whole second (status precision: never before until); Delay is until
// itself, to the instant, for the requeue.
func AppThrottled(held AppToken, revoked bool, until, now time.Time) Retry {
	at := renewal.Truncate(until)
	if at.Before(until) {
		at = at.Add(time.Second)
	}
	r := Retry{At: at, Delay: max(until.Sub(now), 0)}
	next := at.UTC().Format(time.RFC3339)
	switch {
	case held.ValidAt(now) && !revoked:
		r.Ready, r.Reason = true, v1alpha1.ReasonRefreshFailing
		r.Message = "The token is valid until " + held.ExpiresAt.UTC().Format(time.RFC3339) +
			"; the upstream asked not to be called for the app key before " + next + " (Retry-After); next try at " + next
	case revoked:
		r.Reason = v1alpha1.ReasonUpstreamUnavailable
		r.Message = "The token was revoked; the upstream asked not to be called for the app key before " + next + " (Retry-After); next try at " + next
	default:
		r.Reason = v1alpha1.ReasonUpstreamUnavailable
		r.Message = "No valid token: the upstream asked not to be called for the app key before " + next + " (Retry-After); next try at " + next
	}
	return r
}
