package policy

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// AppToken is a ThingSpace app token as the ThingSpaceApp decisions see it.
type AppToken struct {
	AccessToken string
	IssuedAt    time.Time
	ExpiresAt   time.Time
}

// ValidAt reports whether t is a token that has not expired at now.
func (t AppToken) ValidAt(now time.Time) bool { return t.AccessToken != "" && now.Before(t.ExpiresAt) }

// SecretToken is a token as read back from a ThingSpaceApp's Secret, before it is trusted.
type SecretToken struct {
	AccessToken string
	ExpiresAt   time.Time
	// Provenance is the Secret's ProvenanceAnnotation; Want is the provenance the token would carry
	// had the app's current endpoint, key and secret issued it.
	Provenance, Want string
	// ExpiryProvenance is the Secret's ExpiryProvenanceAnnotation; WantExpiry the one the operator
	// would have written with this token and expiry.
	ExpiryProvenance, WantExpiry string
}

// TrustHeld returns the token of a Secret as far as it can be trusted, and why not when it cannot.
//
// A token is only ever associated with the endpoint, key and secret that issued it (issue 8 scenario
// 2): a Secret whose provenance differs holds another key's token (or one the operator did not write),
// and serves nothing. Its expiry is believed only up to what the upstream said, as recorded in status
// (scenario 3): a Secret claiming more was edited. Either way the token is not published, not shared,
// and a fetch with the current credentials replaces it.
func TrustHeld(sec SecretToken, st *v1alpha1.ThingSpaceAppStatus) (AppToken, string) {
	switch {
	case sec.AccessToken == "":
		return AppToken{}, ""
	case sec.Provenance == "" || sec.Provenance != sec.Want:
		return AppToken{}, "the token in the Secret was not issued for the current endpoint and credentials"
	case sec.ExpiryProvenance != "" && sec.ExpiryProvenance == sec.WantExpiry:
		// The operator wrote this expiry with this token: believed even when the status write that
		// follows the Secret's was lost (a kill between the two); the chaos suite caught a new leader
		// asking again for a token its predecessor had just published.
	case st.ExpiresAt == nil || !sec.ExpiresAt.Before(st.ExpiresAt.Add(time.Second)):
		// Status times are whole seconds, the Secret's milliseconds: anything past that second was
		// not said by the upstream.
		return AppToken{}, "the Secret's expiry is later than the upstream said"
	}
	t := AppToken{AccessToken: sec.AccessToken, ExpiresAt: sec.ExpiresAt}
	if st.LastRefreshTime != nil {
		t.IssuedAt = st.LastRefreshTime.Time
	}
	return t, ""
}

// AppStep is what a ThingSpaceApp reconcile does upstream.
type AppStep int

const (
	// AppWait keeps the current token; the next look is at Decision.Next.
	AppWait AppStep = iota
	// AppAdopt publishes the broker's token: another holder of the key got a newer one.
	AppAdopt
	// AppFetch asks for a token: none valid is known. The platform hands out the key's current one.
	AppFetch
	// AppRotate revokes the current token and asks for another (refresh request, renewBefore).
	AppRotate
	// AppHold sends nothing: the credentials were refused; a change of the Secret or spec wakes it.
	AppHold
	// AppRetryLater sends nothing before a failure's retry slot, Decision.Next.
	AppRetryLater
)

func (s AppStep) String() string {
	return [...]string{"wait", "adopt", "fetch", "rotate", "hold", "retry-later"}[s]
}

// Why a rotation revokes; told to the other holders of the token.
const (
	WhyRefreshRequested = "refresh requested"
	WhyRenewBefore      = "renewBefore"
)

// AppInput is what a ThingSpaceApp reconcile gathered.
type AppInput struct {
	Generation  int64
	RenewBefore time.Duration
	Annotations map[string]string
	// Status is the status last decided for the app.
	Status *v1alpha1.ThingSpaceAppStatus
	// CredentialsVersion is the credentials Secret's resourceVersion.
	CredentialsVersion string
	// Held is the trusted token of the app's Secret (see TrustHeld); HeldRevoked is set when this
	// process revoked it.
	Held        AppToken
	HeldRevoked bool
	// Current is the valid token the broker knows for the key (zero: none).
	Current AppToken
	Now     time.Time
	// Jitter is a value in [0,1).
	Jitter float64
	// SharedElsewhere is set when another manager (a shard, internal/holders) holds the key's token:
	// no rotation revokes it (see shard.go).
	SharedElsewhere bool
	// NotBefore is the time before which the upstream asked not to be called for the key, as the
	// broker remembers it (zero: none known); LastCallFailed is set when the key's last upstream call
	// failed transiently (app_rotation.go).
	NotBefore      time.Time
	LastCallFailed bool
}

// AppDecision is what to do, and when to look again.
type AppDecision struct {
	Step AppStep
	// ClearRejected is set when a recorded refusal no longer stands (the Secret or the spec changed).
	ClearRejected bool
	// Refresh is the refresh request this step serves, recorded as observed once it succeeded.
	Refresh string
	// Why a rotation revokes (WhyRefreshRequested, WhyRenewBefore).
	Why string
	// Next is the planned renewal (AppWait) or the retry slot (AppRetryLater).
	Next time.Time
	// Ready, when Reason is set, is the condition to show while the step waits (AppRetryLater).
	Ready           metav1.ConditionStatus
	Reason, Message string
	// RevokeSkipped is the rotation (WhyRefreshRequested, WhyRenewBefore) not done because the token
	// is SharedElsewhere.
	RevokeSkipped string
	// Deferred, on an AppWait, says why the renewBefore rotation due now waits until Next
	// (CheckRotation); it ends the Ready message.
	Deferred string
}

// DecideApp is the ThingSpaceApp decision: the first gate that holds wins.
func DecideApp(in AppInput) AppDecision {
	st := in.Status
	var d AppDecision
	if st.RejectedCredentialsVersion != "" {
		// Rejected credentials or a refused request: nothing goes upstream until the credentials Secret
		// or the spec changes. A wrong secret must never turn into a request loop.
		if CredentialsStillRejected(st.RejectedCredentialsVersion, in.CredentialsVersion, st.Conditions, in.Generation) {
			return AppDecision{Step: AppHold}
		}
		d.ClearRejected = true
	}
	manual, value := RefreshRequested(in.Annotations, st.ObservedRefreshRequest)
	plan := AppPlannedRenewal(st, in.Generation, in.renewBefore(), in.Current, in.Jitter)
	switch {
	case !in.Current.ValidAt(in.Now):
		d.Step = AppFetch
	case manual && !in.SharedElsewhere:
		d.Step, d.Why = AppRotate, WhyRefreshRequested
	case in.Current.AccessToken != in.Held.AccessToken:
		d.Step = AppAdopt
	case in.renewBefore() > 0 && !in.Now.Before(plan):
		d.Step, d.Why = AppRotate, WhyRenewBefore
		if c := CheckRotation(in.Current, in.NotBefore, in.LastCallFailed, in.Now); !c.Rotate {
			d.Step, d.Why, d.Next, d.Deferred = AppWait, "", c.Next, c.Why
		}
	default:
		d.Step, d.Next = AppWait, plan
	}
	if manual {
		d.Refresh = value
	}
	d.RevokeSkipped = revokeSkipped(in, manual, d.Step)
	if d.Step != AppFetch && d.Step != AppRotate {
		return d
	}
	// After a failure the next upstream call waits for its slot, whatever woke us up.
	if at, ok := appRetrySlot(st, in.NotBefore, in.Now); ok {
		w := AppDecision{Step: AppRetryLater, Next: at, ClearRejected: d.ClearRejected}
		slot := at.UTC().Format(time.RFC3339)
		switch {
		case in.Held.AccessToken != "" && in.HeldRevoked:
			w.Ready, w.Reason = metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable
			w.Message = "The token was revoked and getting a new one failed; next try at " + slot
		case in.Held.AccessToken != "" && !in.Held.ValidAt(in.Now):
			w.Ready, w.Reason = metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable
			w.Message = "The token has expired and the last refresh failed; next try at " + slot
		}
		return w
	}
	return d
}

// AppPlannedRenewal is when the token cur should be replaced: the time already in status while it is
// about this token and this spec (so a restart keeps the jittered plan), otherwise a fresh computation.
// A recorded plan that no jitter could have produced (one from before the scenario 1 fix, say) is
// computed afresh.
func AppPlannedRenewal(st *v1alpha1.ThingSpaceAppStatus, gen int64, renewBefore time.Duration, cur AppToken, jitter float64) time.Time {
	if renewBefore <= 0 {
		return cur.ExpiresAt // no window: at expiry, precisely; nothing to keep stable
	}
	fresh := renewal.RenewalTime(cur.IssuedAt, cur.ExpiresAt, renewBefore, jitter)
	if st.RenewalTime != nil && st.ExpiresAt != nil && st.ExpiresAt.Time.Equal(renewal.Truncate(cur.ExpiresAt)) &&
		DecidedForGeneration(st.Conditions, v1alpha1.ConditionReady, gen) {
		earliest := renewal.RenewalTime(cur.IssuedAt, cur.ExpiresAt, renewBefore, 1)
		latest := renewal.RenewalTime(cur.IssuedAt, cur.ExpiresAt, renewBefore, 0)
		if r := st.RenewalTime.Time; !r.Before(earliest) && !r.After(latest) {
			return r
		}
	}
	return fresh
}

// AppPublished is what a successful step publishes and when to look again.
type AppPublished struct {
	// ExpiresAt is the expiry to publish in the Secret and status.
	ExpiresAt time.Time
	Next      time.Time
}

// AppRefreshed plans after a successful step that yielded tok. retryAt is set when the platform
// answered with the token it was asked to replace, or with expires_in 0 (scenario 12: "expired now",
// ask again shortly); idle is set when nothing was asked (AppWait).
func AppRefreshed(in AppInput, tok AppToken, retryAt time.Time, idle bool) AppPublished {
	p := AppPublished{ExpiresAt: tok.ExpiresAt}
	if held := in.Held; held.AccessToken != "" && tok.AccessToken == held.AccessToken &&
		(!retryAt.IsZero() || !tok.ExpiresAt.After(held.ExpiresAt)) {
		p.ExpiresAt = held.ExpiresAt // the same token again: keep the expiry already published
	}
	switch {
	case !retryAt.IsZero():
		p.Next = retryAt
	case in.Status.FailedRefreshAttempts == 0 && idle:
		p.Next = AppPlannedRenewal(in.Status, in.Generation, in.renewBefore(), tok, in.Jitter)
	default:
		p.Next = renewal.RenewalTime(tok.IssuedAt, tok.ExpiresAt, in.renewBefore(), in.Jitter)
	}
	return p
}

// AppTerminal says whether err, an upstream answer to a ThingSpaceApp's call, is unambiguous enough to
// stop asking until the credentials Secret or the spec changes, and the condition reason to show.
//
// Only the token endpoint's answers about the credentials (401, or invalid_client /
// unauthorized_client) or about the request (a 400 with invalid_request, invalid_scope or
// unsupported_grant_type, or a request refused before it was sent) are. Revoke's errors are not
// documented (issue 8 scenario 10): whatever they are, backing off and, at expiry, a plain token
// request settles what the credentials are worth.
func AppTerminal(err error) (string, bool) {
	var e *upstream.Error
	if !errors.As(err, &e) || e.Endpoint != thingspace.EndpointToken {
		return "", false
	}
	switch {
	case e.Kind == upstream.Rejected && (e.StatusCode == http.StatusUnauthorized || e.Code == "invalid_client" || e.Code == "unauthorized_client"):
		return v1alpha1.ReasonCredentialsRejected, true
	case e.Kind == upstream.Invalid && e.StatusCode == 0:
		return v1alpha1.ReasonRequestInvalid, true
	case e.Kind == upstream.Invalid && e.StatusCode == http.StatusBadRequest &&
		(e.Code == "invalid_request" || e.Code == "invalid_scope" || e.Code == "unsupported_grant_type"):
		return v1alpha1.ReasonRequestInvalid, true
	}
	return "", false
}

// AppFailure is what to record after a failed step.
type AppFailure struct {
	// Terminal: wait for a change of the credentials Secret or the spec (Reason says which refusal).
	Terminal bool
	// Retry is the backoff plan when not Terminal.
	Retry   Retry
	Reason  string
	Message string
	// Warn is set when the failure deserves a Warning event (a refusal, or the first of a series).
	Warn bool
}

// AppFailed decides after err, the failures-th consecutive failure. held is the token the Secret still
// holds; revoked is set when this pass revoked it (scenario 18: it is dead, whatever its expiry says).
func AppFailed(b renewal.Backoff, failures int32, rnd float64, err error, held AppToken, revoked bool, now time.Time) AppFailure {
	msg := err.Error() // upstream errors carry status and error codes only, never bodies or secrets
	if reason, ok := AppTerminal(err); ok {
		return AppFailure{Terminal: true, Reason: reason, Warn: true,
			Message: msg + "; nothing is retried until the credentials Secret or the spec changes"}
	}
	var exp time.Time
	if held.AccessToken != "" && !revoked {
		exp = held.ExpiresAt
	}
	p := PlanRetry(b, failures, rnd, err, exp, now)
	switch {
	case revoked:
		p = RevokedRetry(b, failures, err, now)
	case held.AccessToken != "" && !now.Before(held.ExpiresAt):
		p = ExpiredRetry(b, failures, rnd, err, now)
	}
	f := AppFailure{Retry: p, Reason: p.Reason, Message: p.Message, Warn: failures == 1}
	if revoked {
		f.Message = fmt.Sprintf("The token was revoked, but getting a new one failed (%s, attempt %d); next try at %s",
			msg, failures, p.At.UTC().Format(time.RFC3339))
	}
	return f
}
