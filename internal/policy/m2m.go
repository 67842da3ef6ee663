package policy

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
)

// The M2M (UWS) session's decisions.
const (
	// SessionIdleTimeout is how long ThingSpace keeps an unused session: "expire after 20 minutes of
	// inactivity". Past it a logout is moot.
	SessionIdleTimeout = 20 * time.Minute
	// DefaultKeepAlive is the keep-alive interval when the spec leaves it out: half the idle timeout.
	DefaultKeepAlive = 10 * time.Minute
	// GateRecheck is how soon a login held back by the username's failure limit (not refused: another
	// session may succeed meanwhile and clear the count) is looked at again. It costs no upstream call.
	GateRecheck = time.Minute
)

// SessionAction is what a pass over an M2MSession does upstream.
type SessionAction string

const (
	// SessionWait: nothing goes upstream; look again at Next (zero: only when a watch brings a change).
	SessionWait SessionAction = "Wait"
	// SessionPublish: nothing is due; keep the Secret carrying the app's current token and look again at
	// Next.
	SessionPublish SessionAction = "Publish"
	// SessionLogin: no session yet, or a person asked for a new one.
	SessionLogin SessionAction = "Login"
	// SessionRelogin: the keep-alive is due and there is no account to read; a new login replaces the
	// session before it idles out.
	SessionRelogin SessionAction = "Relogin"
	// SessionHandover: the app published a token of its other key set while the one the session logged
	// in with is still valid (m2m_handover.go): log in with the new token, so both headers change in one
	// Secret write.
	SessionHandover SessionAction = "Handover"
	// SessionKeepAlive: use the session so that it does not idle out.
	SessionKeepAlive SessionAction = "KeepAlive"
	// SessionResetPassword: the password rotation is due (the reset uses the session, so it keeps it
	// alive too).
	SessionResetPassword SessionAction = "ResetPassword"
	// SessionCheckPassword: a reset got no usable answer; one login with the password it replaced settles
	// whether the platform applied it. Nothing else goes upstream first.
	SessionCheckPassword SessionAction = "CheckPassword"
)

// SessionFacts is what a pass gathered about one M2MSession.
type SessionFacts struct {
	Now         time.Time
	Spec        v1alpha1.M2MSessionSpec
	Created     time.Time
	Generation  int64
	Annotations map[string]string
	Status      v1alpha1.M2MSessionStatus
	// HasSession: the Secret holds a session token.
	HasSession bool
	// CredentialsVersion is the resourceVersion of the UWS credentials Secret as read.
	CredentialsVersion string
	// AppTokenDigest is TokenDigest of the app's current token; AppHasStandby: the app has a standby key
	// set (spec.standbyCredentialsSecretRef), so its token can change while the old one is still valid.
	AppTokenDigest string
	AppHasStandby  bool
	// SecretBearerStale: the Secret's access_token is not the app's current token (the app rotated it).
	SecretBearerStale bool
	// UnansweredResetStored: the API server's copy of the status (the cache's) carries the record of
	// the unanswered reset in Status, so a restart honours it too.
	UnansweredResetStored bool
}

// SessionDecision is what to do, and when to look again when nothing is done now.
type SessionDecision struct {
	Action SessionAction
	// RefreshRequest is the refresh annotation's value, when this login acts on it (to be recorded as
	// observed).
	RefreshRequest string
	// Next is when to look again after a Wait or a Publish (zero: on a watch event only).
	Next time.Time
	// Republish: before the action (or while waiting), write the app's current token into the Secret
	// (no upstream call; while waiting, the condition stays what the failure set).
	Republish bool
}

// DecideSession is the M2MSession policy: the first gate that holds wins.
func DecideSession(f SessionFacts) SessionDecision {
	st := f.Status
	manual, request := RefreshRequested(f.Annotations, st.ObservedRefreshRequest)
	if !manual {
		request = ""
	}
	// A reset without a usable answer stops everything else, a person's request included, until one
	// login has settled it, or, once the password is known lost, until the credentials Secret changes.
	if u := UnansweredReset(f); u != nil {
		return decideUnanswered(f, u)
	}
	// Refused credentials: wait for the Secret (or a person) to change something.
	if !manual && CredentialsStillRejected(st.RejectedCredentialsVersion, f.CredentialsVersion, st.Conditions, f.Generation) {
		return SessionDecision{Action: SessionWait}
	}
	// After a failure, nothing goes upstream before the planned retry, whatever woke the pass; but the
	// wait after a gateway 401 is for the token refused, and ends when the app holds another.
	bearerOver := BearerWaitOver(f)
	if slot, ok := RetrySlot(st.FailedAttempts, st.NextKeepAliveTime, f.Now); ok && !manual && !bearerOver {
		// Writing the app's current token into the Secret is no upstream call: a token revoked or
		// expired meanwhile must not wait out the backoff (the chaos suite saw a renewBefore rotation
		// land during a login's backoff). Not over a handover's old pair, which still works.
		return SessionDecision{Action: SessionWait, Next: slot, Republish: f.HasSession && !HandoverDue(f)}
	}
	next := f.Now
	if st.NextKeepAliveTime != nil {
		next = st.NextKeepAliveTime.Time
	}
	due := !f.Now.Before(next) || bearerOver
	switch {
	case !f.HasSession || manual:
		return SessionDecision{Action: SessionLogin, RefreshRequest: request}
	case HandoverDue(f):
		return SessionDecision{Action: SessionHandover}
	case RotationDue(f):
		return SessionDecision{Action: SessionResetPassword}
	case due && f.Spec.KeepAlive.AccountName == "":
		return SessionDecision{Action: SessionRelogin, Republish: f.SecretBearerStale}
	case due:
		// The app's new token goes into the Secret before the call, not after its answer: under upstream
		// latency a keep-alive took 1.2 s while the Secret held the dead token (the chaos suite).
		return SessionDecision{Action: SessionKeepAlive, Republish: f.SecretBearerStale}
	}
	return SessionDecision{Action: SessionPublish, Next: SessionWake(f, next)}
}

// KeepAliveInterval is the spec's keep-alive interval, or DefaultKeepAlive.
func KeepAliveInterval(spec v1alpha1.M2MSessionSpec) time.Duration {
	if i := spec.KeepAlive.Interval; i != nil && i.Duration > 0 {
		return i.Duration
	}
	return DefaultKeepAlive
}

// RotationTime is when the password is next due for a reset: an interval after the last reset, or after
// creation. false: no rotation (none asked for, or the platform refused a reset of these credentials).
func RotationTime(f SessionFacts) (time.Time, bool) {
	st := f.Status
	if f.Spec.PasswordRotation == nil || (st.PasswordRotationRejectedVersion != "" && st.PasswordRotationRejectedVersion == f.CredentialsVersion) ||
		UnansweredReset(f) != nil {
		return time.Time{}, false
	}
	from := f.Created
	if st.PasswordRotatedAt != nil {
		from = st.PasswordRotatedAt.Time
	}
	return from.Add(f.Spec.PasswordRotation.Interval.Duration), true
}

// RotationDue reports whether the password reset is due now.
func RotationDue(f SessionFacts) bool {
	t, ok := RotationTime(f)
	return ok && !f.Now.Before(t)
}

// SessionWake is when to look again given the next keep-alive: that, or the next reset when it comes
// first.
func SessionWake(f SessionFacts, next time.Time) time.Time {
	if rt, ok := RotationTime(f); ok && rt.Before(next) {
		return rt
	}
	return next
}

// SessionRetry plans the retry after the failures-th consecutive transient failure of a session call:
// backoff, honouring Retry-After, pulled in so that several tries land within a keep-alive interval
// (the session idles out otherwise). now is when the answer arrived. The slot is rounded up to the whole
// second, the precision of status.nextKeepAliveTime that a pass woken early is gated on: rounding down
// would retry within Retry-After (the chaos suite caught a login 68 ms early).
func SessionRetry(b renewal.Backoff, failures int32, rnd float64, retryAfter time.Duration, spec v1alpha1.M2MSessionSpec, now time.Time) time.Time {
	return wholeSecondUp(now.Add(b.RetryDelay(failures, rnd, retryAfter, KeepAliveInterval(spec))))
}

// wholeSecondUp is t, or the next whole second: the status keeps whole seconds, and a retry slot kept
// truncated would let a later pass call inside the Retry-After it honours.
func wholeSecondUp(t time.Time) time.Time {
	if w := renewal.Truncate(t); !w.Equal(t) {
		return w.Add(time.Second)
	}
	return t
}

// BearerWaitOver reports whether the wait after a gateway 401 has been ended by the app: Ready says
// BearerRejected, and the app now holds a token other than the one refused (status.rejectedTokenDigest).
// The backoff kept the refused Bearer from being sent again; another token is not a retry of the refused
// call, and waiting for the slot would leave the Secret with a revoked token while the app's new one is
// there (the chaos suite saw 14.6 s after a renewBefore rotation). The same token never ends the wait:
// no retry loop against the gateway with a Bearer it refused.
func BearerWaitOver(f SessionFacts) bool {
	st := f.Status
	c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
	return c != nil && c.Reason == v1alpha1.ReasonBearerRejected && st.RejectedTokenDigest != "" &&
		f.AppTokenDigest != "" && f.AppTokenDigest != st.RejectedTokenDigest
}

// BearerPlan is what to do when the gateway refused the app token on a session call.
type BearerPlan struct {
	// RefreshApp: ask the shared broker for a new app token. Only the first refusal of an episode does;
	// the token the broker hands out is the app's for every holder, so asking on every retry would churn
	// it for all of them.
	RefreshApp bool
	Failures   int32
	At         time.Time
	Message    string
}

// BearerRejected plans a gateway 401 on the Bearer. The retries back off like any upstream failure but
// are not pulled in by the keep-alive interval: calling sooner only earns another 401. An episode lasts
// until a session call succeeds (the Ready reason is BearerRejected meanwhile).
func BearerRejected(b renewal.Backoff, st v1alpha1.M2MSessionStatus, rnd float64, now time.Time) BearerPlan {
	c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
	p := BearerPlan{RefreshApp: c == nil || c.Reason != v1alpha1.ReasonBearerRejected, Failures: st.FailedAttempts + 1}
	p.At = now.Add(b.RetryDelay(p.Failures, rnd, 0, 0))
	if t := renewal.Truncate(p.At); !t.Equal(p.At) {
		p.At = t.Add(time.Second) // the status records whole seconds; never retry early
	}
	asked := "a new app token was asked for once already"
	if p.RefreshApp {
		asked = "asked the ThingSpaceApp's key for a new token"
	}
	p.Message = fmt.Sprintf("The ThingSpace gateway refused the ThingSpaceApp's token on a session call (401, attempt %d); %s; next try at %s",
		p.Failures, asked, p.At.UTC().Format(time.RFC3339))
	return p
}

// LastUse is when the session in the Secret was last used (its login, a keep-alive or a reset); zero
// when never.
func LastUse(st v1alpha1.M2MSessionStatus) time.Time {
	var t time.Time
	if st.LastLoginTime != nil {
		t = st.LastLoginTime.Time
	}
	if st.LastKeepAliveTime != nil && st.LastKeepAliveTime.After(t) {
		t = st.LastKeepAliveTime.Time
	}
	return t
}

// LogoutAction is what deleting an M2MSession does about its session.
type LogoutAction string

const (
	// LogoutCall: log the session out, then let the object go.
	LogoutCall LogoutAction = "Logout"
	// LogoutNone: nothing to log out; let the object go.
	LogoutNone LogoutAction = "None"
	// LogoutMoot: the session cannot be logged out now or no longer needs it; let the object go (with
	// an event saying why).
	LogoutMoot LogoutAction = "Moot"
)

// LogoutFacts is what a pass over a deleted M2MSession gathered.
type LogoutFacts struct {
	Now time.Time
	// Deleted is the object's deletionTimestamp: nothing uses the session after it.
	Deleted    time.Time
	Status     v1alpha1.M2MSessionStatus
	HasSession bool
	// AppReady: the ThingSpaceApp holds a valid token (the Bearer of the logout call).
	AppReady bool
	// EndpointRefused says why the app's endpoint may not be called (a host not in
	// --allowed-endpoint-hosts, say); "" when it may.
	EndpointRefused string
}

// LogoutDecision says what to do and, for LogoutMoot, why.
type LogoutDecision struct {
	Action LogoutAction
	Reason string
}

// DecideLogout is the deletion policy. A session idle for SessionIdleTimeout has ended on the platform:
// logging it out is moot, however the calls have been failing.
func DecideLogout(f LogoutFacts) LogoutDecision {
	switch {
	case !f.HasSession:
		return LogoutDecision{Action: LogoutNone}
	case f.EndpointRefused != "":
		// Nothing goes to a refused host, and the deletion must not wait for a spec that cannot change.
		return LogoutDecision{Action: LogoutMoot, Reason: f.EndpointRefused + "; the session will idle out"}
	case !f.Now.Before(LogoutMootAt(f.Status, f.Deleted)):
		return LogoutDecision{Action: LogoutMoot, Reason: "the session has not been used for 20 minutes and has idled out on the platform"}
	case !f.AppReady:
		return LogoutDecision{Action: LogoutMoot, Reason: "the ThingSpaceApp holds no valid token; the session will idle out"}
	}
	return LogoutDecision{Action: LogoutCall}
}

// LogoutMootAt is when logging the session out stops mattering: SessionIdleTimeout after its last use,
// or, when no use is recorded, after the deletion (nothing uses it from then on).
func LogoutMootAt(st v1alpha1.M2MSessionStatus, deleted time.Time) time.Time {
	last := LastUse(st)
	if last.IsZero() {
		last = deleted
	}
	return last.Add(SessionIdleTimeout)
}

// LogoutRetry plans the retry of a logout that failed transiently for the failures-th time: backoff,
// honouring Retry-After, but never past the moment the logout becomes moot (a pass then lets the
// object go).
func LogoutRetry(b renewal.Backoff, failures int32, rnd float64, retryAfter time.Duration, f LogoutFacts) time.Time {
	at := f.Now.Add(b.RetryDelay(failures, rnd, retryAfter, 0))
	if moot := LogoutMootAt(f.Status, f.Deleted); at.After(moot) {
		at = moot
	}
	return at
}
