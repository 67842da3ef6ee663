package policy

import (
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/cloudapi"
	"github.com/credops/thingspace-operator/internal/refreshes"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// CloudAction is what a CloudAuthorization reconcile does next.
type CloudAction int

const (
	// CloudStoreAnswer: new tokens this process obtained wait in memory (CloudInput.Memory): a
	// refresh's (the refresh token in the Secret is already spent) or a code exchange's (the code is);
	// they are stored before anything else.
	CloudStoreAnswer CloudAction = iota + 1
	// CloudDropAnswer: the remembered answer is about a marker the Secret no longer carries (someone
	// replaced the Secret: theirs is newer); forget it and look again at At.
	CloudDropAnswer
	// CloudClearMarker: this process knows the marker's refresh ended without rotating the token
	// (issue 8 scenario 8); clear the marker, then decide again.
	CloudClearMarker
	// CloudWaitForMarker: another process (an old leader, a previous incarnation) may still be waiting
	// for its answer; look again at At, the marker's bound.
	CloudWaitForMarker
	// CloudReauthorize: the refresh token may have been rotated by a refresh whose answer was lost;
	// drop it and ask for consent (Why says why).
	CloudReauthorize
	// CloudAwaitConsent: there is no refresh token; keep a live authorization URL.
	CloudAwaitConsent
	// CloudWaitForChange: the credentials were rejected; nothing goes upstream until the credentials
	// Secret or the spec changes (a watch brings the next pass).
	CloudWaitForChange
	// CloudWaitForSlot: a failed refresh waits for its retry slot, At.
	CloudWaitForSlot
	// CloudKeep: the access token is good; the next refresh is planned at At.
	CloudKeep
	// CloudRefresh: refresh now.
	CloudRefresh
)

// CloudMarker is the refresh marker found on the Secret.
type CloudMarker struct {
	// Value is the annotation's value (the key the process that wrote it remembers it by).
	Value string
	// Started is when the refresh began; zero when the value cannot be read.
	Started time.Time
}

// CloudInput is what a CloudAuthorization reconcile gathered.
type CloudInput struct {
	Generation  int64
	RenewBefore time.Duration
	KeepAlive   time.Duration
	// Status is the object's status as read (not modified here).
	Status *v1alpha1.CloudAuthorizationStatus
	// Annotations are the object's (the refresh request).
	Annotations map[string]string
	// CredentialsVersion is the credentials Secret's resourceVersion.
	CredentialsVersion string

	// HasRefreshToken, AccessToken and ExpiresAt describe the Secret's tokens (ExpiresAt zero: no
	// readable expiry). IssuedAt is when they were obtained (zero: unknown, a bootstrap Secret).
	HasRefreshToken bool
	AccessToken     bool
	ExpiresAt       time.Time
	IssuedAt        time.Time
	// Marker is the Secret's refresh marker, nil when it has none.
	Marker *CloudMarker
	// Memory is what this process remembers of the object's last refresh, nil when nothing.
	Memory *refreshes.Entry
	// InFlightBound is how long a marker this process knows nothing of is honoured.
	InFlightBound time.Duration

	Now  time.Time
	Rand float64
}

// Condition is a condition a decision sets.
type Condition struct {
	Status  metav1.ConditionStatus
	Reason  string
	Message string
}

// CloudDecision is what to do, when to look again and what the conditions say.
type CloudDecision struct {
	Action CloudAction
	// At is when to look again (CloudDropAnswer, CloudWaitForMarker, CloudWaitForSlot) or the planned
	// refresh (CloudKeep). Zero: no time of its own.
	At time.Time
	// Why explains a CloudReauthorize.
	Why string
	// ObserveRequest, when set, is a refresh request acted on (CloudRefresh) or moot
	// (CloudAwaitConsent): status.observedRefreshRequest takes it.
	ObserveRequest string
	// ClearRejected is set when a recorded credentials refusal no longer applies.
	ClearRejected bool
	// Ready is the Ready condition to set, nil to leave it.
	Ready *Condition
}

// HeldValid reports whether the Secret's access token is usable at now.
func (in CloudInput) HeldValid() bool {
	return in.AccessToken && !in.ExpiresAt.IsZero() && in.Now.Before(in.ExpiresAt)
}

// DecideCloud is the CloudAuthorization policy: the first gate that holds wins.
func DecideCloud(in CloudInput) CloudDecision {
	if d, ok := decideMarker(in); ok {
		return d
	}
	st := in.Status
	manual, request := RefreshRequested(in.Annotations, st.ObservedRefreshRequest)
	if !in.HasRefreshToken {
		// A refresh request has nothing to act on; it must not fire once consent arrives.
		d := CloudDecision{Action: CloudAwaitConsent}
		if manual {
			d.ObserveRequest = request
		}
		return d
	}
	d := CloudDecision{}
	if st.RejectedCredentialsVersion != "" {
		if CredentialsStillRejected(st.RejectedCredentialsVersion, in.CredentialsVersion, st.Conditions, in.Generation) {
			return CloudDecision{Action: CloudWaitForChange}
		}
		d.ClearRejected = true
	}
	plan := CloudPlannedRefresh(in)
	// A failed refresh stays due until one succeeds: its retry slot is in renewalTime. An expired token
	// is due too, but not sooner than MinCloudRefreshInterval after it was issued (expires_in 0).
	expiredDue := !in.HeldValid() && (in.IssuedAt.IsZero() || !in.Now.Before(in.IssuedAt.Add(MinCloudRefreshInterval)))
	due := !in.AccessToken || !in.Now.Before(plan) || manual || st.FailedRefreshAttempts > 0 || expiredDue
	if !due {
		d.Action, d.At = CloudKeep, plan
		if in.HeldValid() {
			d.Ready = &Condition{metav1.ConditionTrue, v1alpha1.ReasonTokenValid, validUntil(in.ExpiresAt)}
		}
		return d
	}
	// After a failure the next refresh waits for its slot, whatever woke us up.
	if slot, ok := RetrySlot(st.FailedRefreshAttempts, st.RenewalTime, in.Now); ok {
		d.Action, d.At = CloudWaitForSlot, slot
		if !in.HeldValid() {
			d.Ready = &Condition{metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable,
				"No valid access token and the last refresh failed; next try at " + slot.UTC().Format(time.RFC3339)}
		}
		return d
	}
	d.Action = CloudRefresh
	if manual {
		d.ObserveRequest = request
	}
	return d
}

// decideMarker settles what the process remembers and the Secret's marker say, before anything else.
func decideMarker(in CloudInput) (CloudDecision, bool) {
	mem, m := in.Memory, in.Marker
	if mem != nil && mem.Outcome == refreshes.Exchanged {
		// A consent's tokens the callback could not store: the code is spent, they are the grant, and
		// they supersede whatever the Secret holds (consent is asked for only when it holds none).
		return CloudDecision{Action: CloudStoreAnswer}, true
	}
	if mem != nil && mem.Outcome == refreshes.Rotated {
		if m != nil && m.Value == mem.Marker {
			return CloudDecision{Action: CloudStoreAnswer}, true
		}
		return CloudDecision{Action: CloudDropAnswer, At: in.Now.Add(renewal.MinRetryDelay)}, true
	}
	if m == nil {
		return CloudDecision{}, false
	}
	if mem != nil && mem.Marker == m.Value {
		switch mem.Outcome {
		case refreshes.NotRotated:
			return CloudDecision{Action: CloudClearMarker}, true
		case refreshes.Lost:
			return CloudDecision{Action: CloudReauthorize, Why: "A refresh got no usable answer; Verizon may have rotated the refresh token, which is never sent twice"}, true
		}
	}
	if !m.Started.IsZero() {
		if bound := m.Started.Add(in.InFlightBound); in.Now.Before(bound) {
			return CloudDecision{Action: CloudWaitForMarker, At: bound}, true
		}
	}
	return CloudDecision{Action: CloudReauthorize,
		Why: "A refresh was interrupted before its answer was stored; Verizon may have rotated the refresh token, which is never sent twice"}, true
}

// CloudPlannedRefresh is when the access token held should be replaced: the time already in status
// while it is about this token and this spec (so a restart keeps the jittered plan), otherwise a fresh
// one. An unknown issue time (a bootstrap Secret) counts the lifetime from now.
func CloudPlannedRefresh(in CloudInput) time.Time {
	st := in.Status
	if st.RenewalTime != nil && st.ExpiresAt != nil && st.FailedRefreshAttempts == 0 &&
		st.ExpiresAt.Time.Equal(renewal.Truncate(in.ExpiresAt)) &&
		DecidedForGeneration(st.Conditions, v1alpha1.ConditionReady, in.Generation) {
		return st.RenewalTime.Time
	}
	issued := in.IssuedAt
	if issued.IsZero() || issued.After(in.ExpiresAt) {
		issued = in.Now
	}
	return CloudNextRefresh(issued, in.ExpiresAt, in.RenewBefore, in.KeepAlive, in.Rand)
}

// MinCloudRefreshInterval is the least time between two planned refreshes of one grant: an answer
// saying the access token expires at once (expires_in 0) must not turn into a refresh per reconcile,
// each rotating the refresh token.
const MinCloudRefreshInterval = 5 * time.Second

// CloudNextRefresh plans the refresh of tokens issued at issued that expire at expires (see
// renewal.RefreshTime). Tokens that expired at once (a lifetime under a second: expires_in 0) are
// refreshed MinCloudRefreshInterval after issue, not at once.
func CloudNextRefresh(issued, expires time.Time, renewBefore, keepAlive time.Duration, rnd float64) time.Time {
	t := renewal.RefreshTime(issued, expires, renewBefore, keepAlive, rnd)
	if expires.Sub(issued) < time.Second {
		t = maxTime(t, issued.Add(MinCloudRefreshInterval))
	}
	return t
}

// CloudFailureAction is how a failed refresh is handled.
type CloudFailureAction int

const (
	// CloudFailReauthorize: the refresh token is dead or may have been rotated; drop it.
	CloudFailReauthorize CloudFailureAction = iota + 1
	// CloudFailStop: the app's credentials were refused (invalid_client): wait for them to change.
	CloudFailStop
	// CloudFailRetry: anything else; back off and retry.
	CloudFailRetry
)

// CloudFailure is the decision after a failed refresh.
type CloudFailure struct {
	Action CloudFailureAction
	// Outcome is what to remember about the marker: NotRotated when the token in the Secret is intact
	// (the marker may be cleared), Lost when it may have been rotated.
	Outcome refreshes.Outcome
	// Why explains a CloudFailReauthorize.
	Why string
	// Ready is the condition for CloudFailStop.
	Ready *Condition
	// Retry plans a CloudFailRetry.
	Retry Retry
}

// CloudRefreshFailed sorts a failed refresh (issue 8 scenario 10). Only unambiguous answers are
// terminal: invalid_grant or a 401 (the grant is gone: reauthorize) and invalid_client (the app's
// credentials: stop until they change). A request that may have reached Verizon without an answer, or
// a 2xx that cannot be used, may have rotated the token: reauthorize rather than risk a reuse. Any
// other answer, a 403 without invalid_grant or another 4xx included, backs off and retries. failures
// is the consecutive count including this one; heldExpiry is the valid access token's expiry (zero:
// none).
func CloudRefreshFailed(err error, failures int32, b renewal.Backoff, rnd float64, heldExpiry, now time.Time) CloudFailure {
	msg := err.Error() // upstream errors carry status and error codes only, never bodies or tokens
	switch {
	case cloudapi.Unanswered(err), answeredUnusably(err):
		return CloudFailure{Action: CloudFailReauthorize, Outcome: refreshes.Lost,
			Why: "A refresh got no usable answer (" + msg + "); Verizon may have rotated the refresh token, which is never sent twice"}
	case cloudapi.NeedsReauthorization(err):
		return CloudFailure{Action: CloudFailReauthorize, Outcome: refreshes.NotRotated,
			Why: "Verizon refused the refresh token (" + msg + "): it was revoked, expired or already used"}
	case cloudapi.ClientRejected(err):
		return CloudFailure{Action: CloudFailStop, Outcome: refreshes.NotRotated,
			Ready: &Condition{metav1.ConditionFalse, v1alpha1.ReasonCredentialsRejected,
				msg + "; nothing is retried until the credentials Secret or the spec changes"}}
	}
	return CloudFailure{Action: CloudFailRetry, Outcome: refreshes.NotRotated, Retry: PlanRetry(b, failures, rnd, err, heldExpiry, now)}
}

// answeredUnusably reports a 2xx whose body could not be used: Verizon accepted the refresh, so the
// refresh token that was sent has most likely been rotated.
func answeredUnusably(err error) bool {
	e, ok := errors.AsType[*upstream.Error](err)
	return ok && e.StatusCode >= 200 && e.StatusCode < 300
}

// KeepAliveMargin is how long before a refresh token dies unused a failing grant is reported at risk
// at the latest.
const KeepAliveMargin = 24 * time.Hour

// CloudKeepAlive says whether the refresh token is at risk of dying unused (issue 8 scenario 10): the
// last refresh was at lastRefresh (zero: unknown, nothing to say), refreshes are failing or stopped,
// and now is past the keep-alive time (lastRefresh + keepAlive), or within KeepAliveMargin of the
// token's death at lastRefresh + cloudapi.RefreshTokenLifetime, whichever comes first. riskAt is that
// time (to look again at while failing), deadline the token's death.
func CloudKeepAlive(lastRefresh time.Time, keepAlive time.Duration, failing bool, now time.Time) (atRisk bool, riskAt, deadline time.Time) {
	if lastRefresh.IsZero() {
		return false, time.Time{}, time.Time{}
	}
	deadline = lastRefresh.Add(cloudapi.RefreshTokenLifetime)
	riskAt = deadline.Add(-KeepAliveMargin)
	if keepAlive > 0 {
		riskAt = minTime(riskAt, lastRefresh.Add(keepAlive))
	}
	return failing && !now.Before(riskAt), riskAt, deadline
}

// CloudAuthorizedCondition is the Authorized condition while the operator holds a refresh token:
// Granted, or RefreshTokenAtRisk (see CloudKeepAlive) with the deadline in the message.
func CloudAuthorizedCondition(atRisk bool, lastRefresh, deadline time.Time) Condition {
	if !atRisk {
		return Condition{metav1.ConditionTrue, v1alpha1.ReasonGranted, "The operator holds a refresh token for this app"}
	}
	return Condition{metav1.ConditionTrue, v1alpha1.ReasonRefreshTokenAtRisk, fmt.Sprintf(
		"Refreshing keeps failing: the refresh token was last renewed at %s and dies unused at %s unless a refresh succeeds before; see Ready",
		lastRefresh.UTC().Format(time.RFC3339), deadline.UTC().Format(time.RFC3339))}
}

func validUntil(t time.Time) string {
	return "The Secret holds an access token valid until " + t.UTC().Format(time.RFC3339)
}

// CloudValidUntil is the Ready message of a valid access token expiring at t.
func CloudValidUntil(t time.Time) string { return validUntil(t) }

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
