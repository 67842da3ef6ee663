package policy

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// DecidedForGeneration reports whether the condition typ was set for generation gen: a decision that
// waits "until the spec changes" compares against it.
func DecidedForGeneration(conds []metav1.Condition, typ string, gen int64) bool {
	c := meta.FindStatusCondition(conds, typ)
	return c != nil && c.ObservedGeneration == gen
}

// CredentialsStillRejected reports whether an upstream refusal still stands: the credentials Secret is
// the version the upstream refused (rejectedVersion, from status) and the spec is the generation that
// saw the refusal. While it stands nothing goes upstream; a watch on the Secret or the object brings the
// next pass. A rejected version that no longer matches must be cleared by the caller.
func CredentialsStillRejected(rejectedVersion, credsVersion string, conds []metav1.Condition, gen int64) bool {
	return rejectedVersion != "" && rejectedVersion == credsVersion &&
		DecidedForGeneration(conds, v1alpha1.ConditionReady, gen)
}

// RefreshRequested reports whether the object carries a refresh request not acted on yet, and its value
// (to be recorded as observed once the request has been acted on, or found moot).
func RefreshRequested(annotations map[string]string, observed string) (bool, string) {
	v := annotations[v1alpha1.RefreshRequestedAnnotation]
	return v != "" && v != observed, v
}

// RetrySlot returns the retry time a failure left in status, when one is still ahead: after a failure
// nothing goes upstream before that slot, whatever woke the reconcile (a watch event, a notification, a
// person's refresh request).
func RetrySlot(failures int32, retryAt *metav1.Time, now time.Time) (time.Time, bool) {
	if failures <= 0 || retryAt == nil || !now.Before(retryAt.Time) {
		return time.Time{}, false
	}
	return retryAt.Time, true
}

// RecordFailure counts a failed upstream call in rs at now and returns the new consecutive count.
func RecordFailure(rs *v1alpha1.RefreshStatus, now time.Time) int32 {
	rs.FailedRefreshAttempts++
	rs.LastFailureTime = metaTime(now)
	return rs.FailedRefreshAttempts
}

// Retry is when to try again after a transient upstream failure, and what the credential is meanwhile.
type Retry struct {
	Delay time.Duration
	At    time.Time
	// Ready is true while the credential in the Secret still works (Reason RefreshFailing), false once it
	// has expired (Reason UpstreamUnavailable).
	Ready   bool
	Reason  string
	Message string
}

// PlanRetry backs off after the failures-th consecutive failure err, honouring the upstream's
// Retry-After and pulling the retry in ahead of heldExpiry (zero: no valid credential held). The slot is
// rounded up to the whole second, the precision of the status time a later pass is gated on: rounding
// down would retry before Retry-After. err's text is safe to show: upstream errors carry status and
// error codes only.
func PlanRetry(b renewal.Backoff, failures int32, rnd float64, err error, heldExpiry, now time.Time) Retry {
	retryAfter, _ := upstream.RetryAfterOf(err)
	var untilExpiry time.Duration
	if !heldExpiry.IsZero() {
		untilExpiry = heldExpiry.Sub(now)
	}
	at := now.Add(b.RetryDelay(failures, rnd, retryAfter, untilExpiry))
	if t := renewal.Truncate(at); !t.Equal(at) {
		at = t.Add(time.Second)
	}
	p := Retry{Delay: at.Sub(now), At: at}
	if untilExpiry > 0 {
		p.Ready, p.Reason = true, v1alpha1.ReasonRefreshFailing
		p.Message = fmt.Sprintf("The token is valid until %s, but refreshing failed (%s, attempt %d); next try at %s",
			heldExpiry.UTC().Format(time.RFC3339), err.Error(), failures, at.UTC().Format(time.RFC3339))
	} else {
		p.Reason = v1alpha1.ReasonUpstreamUnavailable
		p.Message = fmt.Sprintf("No valid token: %s (attempt %d); next try at %s", err.Error(), failures, at.UTC().Format(time.RFC3339))
	}
	return p
}

func metaTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(renewal.Truncate(t))
	return &mt
}
