package policy

import (
	"fmt"
	"time"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// A password reset whose answer is lost is a password that may be lost (contract §2): the platform
// applies a reset at once, and only its answer carries the new password. Such a reset is never sent
// again with the old password; it is recorded in status before anything else, rotation stops, and at
// most one login with the old password, under the username's lockout gate, settles what happened.

// UnansweredRecheck is how soon a pass looks again when the record of an unanswered reset is not in the
// API server's copy of the status yet (its own watch event normally comes first).
const UnansweredRecheck = 5 * time.Second

// ResetFailure is what a failed password reset means.
type ResetFailure string

const (
	// ResetSessionEnded: the platform ended the session; log in, and the reset falls due again.
	ResetSessionEnded ResetFailure = "SessionEnded"
	// ResetBearerRejected: the gateway refused the app token (see BearerRejected).
	ResetBearerRejected ResetFailure = "BearerRejected"
	// ResetRetry: the platform did not apply the reset (it never got it, or answered with a transient
	// error): back off and try again.
	ResetRetry ResetFailure = "Retry"
	// ResetUnanswered: the platform may have applied the reset without the new password reaching us.
	// Record it, never send it again, and check with one login.
	ResetUnanswered ResetFailure = "Unanswered"
	// ResetRefused: the platform refused the reset; no reset until the credentials Secret changes.
	ResetRefused ResetFailure = "Refused"
)

// ResetFailed sorts a failed password reset. An unanswered request is also transient by kind, so it is
// told apart first.
func ResetFailed(err error) ResetFailure {
	switch {
	case thingspace.ResetUnanswered(err):
		return ResetUnanswered
	case thingspace.IsSessionInvalid(err):
		return ResetSessionEnded
	case thingspace.IsBearerRejected(err):
		return ResetBearerRejected
	case upstream.IsTransient(err):
		return ResetRetry
	}
	return ResetRefused
}

// UnansweredReset is the record of an unanswered reset that still stands: the credentials Secret is the
// version whose password the reset replaced. nil when there is none or the Secret has changed since (the
// caller clears a void record).
func UnansweredReset(f SessionFacts) *v1alpha1.UnansweredPasswordReset {
	u := f.Status.PasswordResetUnanswered
	if u == nil || u.CredentialsVersion != f.CredentialsVersion {
		return nil
	}
	return u
}

func decideUnanswered(f SessionFacts, u *v1alpha1.UnansweredPasswordReset) SessionDecision {
	switch {
	case u.Lost:
		// The Secret's password is known refused: wait for the Secret to change (a watch).
		return SessionDecision{Action: SessionWait}
	case !f.UnansweredResetStored:
		// The check waits until the record is stored: a restart must find it.
		return SessionDecision{Action: SessionWait, Next: f.Now.Add(UnansweredRecheck)}
	}
	if slot, ok := RetrySlot(f.Status.FailedAttempts, f.Status.NextKeepAliveTime, f.Now); ok && !BearerWaitOver(f) {
		return SessionDecision{Action: SessionWait, Next: slot}
	}
	return SessionDecision{Action: SessionCheckPassword}
}

// PasswordCheck is a step or a verdict of the check of an unanswered reset.
type PasswordCheck string

const (
	// CheckLogin: send the one login with the old password.
	CheckLogin PasswordCheck = "Login"
	// CheckHeld: the username's gate holds the login back (its automatic limit or hard cap); look again
	// after GateRecheck, with no upstream call.
	CheckHeld PasswordCheck = "Held"
	// CheckNotApplied: the old password logged in, so the reset was not applied. The record goes and
	// rotation resumes at its next interval.
	CheckNotApplied PasswordCheck = "NotApplied"
	// CheckLost: the old password was refused: the reset was applied and its password is lost.
	CheckLost PasswordCheck = "Lost"
	// CheckBearerRejected: the gateway refused the app token; see BearerRejected.
	CheckBearerRejected PasswordCheck = "BearerRejected"
	// CheckRetry: the login failed transiently; back off and check again.
	CheckRetry PasswordCheck = "Retry"
)

// PasswordCheckGate is the check's first step, from the username's gate: allowed is what Gate.Allow
// said for an automatic login with the old password, refused whether the gate knows the platform
// refused that password since the username's last success. A refusal already seen is the verdict: no
// login is needed, and none is sent past the gate's caps.
func PasswordCheckGate(allowed, refused bool) PasswordCheck {
	switch {
	case refused:
		return CheckLost
	case !allowed:
		return CheckHeld
	}
	return CheckLogin
}

// PasswordCheckVerdict reads the outcome of the login with the old password (err nil: it succeeded).
// As for any login, an answer that cannot be classified counts as a refusal: it may have counted
// towards the lockout, and the login is not repeated.
func PasswordCheckVerdict(err error) PasswordCheck {
	switch {
	case err == nil:
		return CheckNotApplied
	case thingspace.IsBearerRejected(err):
		return CheckBearerRejected
	case upstream.IsTransient(err):
		return CheckRetry
	}
	return CheckLost
}

// PasswordLostMessage is the Ready message once the password is known lost. why says what refused
// the old password; it must be safe to show (an upstream error's text is).
func PasswordLostMessage(u v1alpha1.UnansweredPasswordReset, why, credentialsSecret string) string {
	return fmt.Sprintf("A password reset sent at %s got no usable answer, and the password it replaced was then refused (%s): "+
		"the platform changed the password and the new one is lost. Reset the UWS password in ThingSpace and put it in the "+
		"credentials Secret %s; no login is attempted until that Secret changes",
		u.SentAt.UTC().Format(time.RFC3339), why, credentialsSecret)
}
