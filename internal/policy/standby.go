package policy

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
)

// The standby key set of a ThingSpaceApp (issue 11 §1): ThingSpace hands out one token per key for its
// whole hour, so overlap needs a second key. handoverBefore ahead of the published token's expiry the
// other key set's token is fetched (fresh: that key's last token expired long ago) and published; the
// replaced one stays valid for the readers that have not seen the update yet. Nothing is revoked.

// Standby is what was gathered about a ThingSpaceApp's standby key set.
type Standby int

const (
	// StandbyNone: no spec.standbyCredentialsSecretRef.
	StandbyNone Standby = iota
	// StandbyReady: its Secret holds a key and a secret the upstream has not refused.
	StandbyReady
	// StandbyMissing: its Secret or one of its keys is missing.
	StandbyMissing
	// StandbyRejected: the upstream refused this version of its Secret (status.rejectedStandbyCredentialsVersion).
	StandbyRejected
)

// OtherKeySet is the key set a handover from ks fetches with.
func OtherKeySet(ks string) string {
	if ks == v1alpha1.KeySetStandby {
		return v1alpha1.KeySetPrimary
	}
	return v1alpha1.KeySetStandby
}

// EffectiveHandoverBefore is spec (zero: v1alpha1.DefaultHandoverBefore) used as at most a third of
// tok's lifetime: the handover after next fetches with this token's key again, and that key's token
// must have expired by then (lifetime > 2 × handoverBefore) or the platform hands out the old one. A
// third leaves a third of the lifetime as margin. An unknown issue time clamps nothing.
func EffectiveHandoverBefore(spec time.Duration, tok AppToken) time.Duration {
	hb := spec
	if hb <= 0 {
		hb = v1alpha1.DefaultHandoverBefore
	}
	if !tok.IssuedAt.IsZero() {
		if life := tok.ExpiresAt.Sub(tok.IssuedAt); life > 0 && hb > life/3 {
			hb = life / 3
		}
	}
	return hb
}

// StandbyStillRejected reports whether a refusal of the standby key set still stands: its Secret is the
// version refused and the spec the generation that saw it (the Overlap condition's).
func StandbyStillRejected(rejectedVersion, version string, conds []metav1.Condition, gen int64) bool {
	return rejectedVersion != "" && rejectedVersion == version &&
		DecidedForGeneration(conds, v1alpha1.ConditionOverlap, gen)
}

// HandoverInput is what the handover plan is made from.
type HandoverInput struct {
	// HandoverBefore is spec.handoverBefore (zero: unset).
	HandoverBefore time.Duration
	Standby        Standby
	// Problem says what is wrong with a missing standby key set (names a Secret, never a value).
	Problem string
	// Active is the key set that issued Held, the published token.
	Active     string
	Held       AppToken
	Status     *v1alpha1.ThingSpaceAppStatus
	Generation int64
	// GaveUp is the expiry of a token for which this process found no handover possible (the other
	// key set's token outlived it by too little); zero: none.
	GaveUp time.Time
	Now    time.Time
}

// HandoverPlan is when to hand over, and what the Overlap condition says meanwhile.
type HandoverPlan struct {
	// Due: fetch with the other key set now.
	Due bool
	// At is the planned handover; zero: none, the token is renewed at its expiry with the active key set.
	At time.Time
	// Keep: the Overlap condition stays as the last failure or deferral set it.
	Keep bool
	// Overlap, Reason and Message are the Overlap condition (Reason "": none, no standby key set).
	Overlap         metav1.ConditionStatus
	Reason, Message string
}

// PlanHandover plans the next handover of the published token in.Held.
func PlanHandover(in HandoverInput) HandoverPlan {
	fallback := fmt.Sprintf("the token is renewed at its expiry (%s) with the %s key set", stamp(in.Held.ExpiresAt), in.Active)
	switch in.Standby {
	case StandbyNone:
		return HandoverPlan{}
	case StandbyMissing:
		return HandoverPlan{Overlap: metav1.ConditionFalse, Reason: v1alpha1.ReasonStandbyCredentialsNotFound,
			Message: "Standby key set unusable: " + in.Problem + "; " + fallback}
	case StandbyRejected:
		return HandoverPlan{Overlap: metav1.ConditionFalse, Reason: v1alpha1.ReasonStandbyCredentialsRejected,
			Message: "The upstream refused the standby key set; nothing is sent with it until its Secret or the spec changes; " + fallback}
	}
	if in.Held.AccessToken == "" {
		return HandoverPlan{Keep: true} // nothing published yet: planned once a token is
	}
	if in.GaveUp.Equal(in.Held.ExpiresAt) {
		return HandoverPlan{Keep: true}
	}
	st := in.Status
	hb := EffectiveHandoverBefore(in.HandoverBefore, in.Held)
	at := renewal.Truncate(in.Held.ExpiresAt.Add(-hb))
	p := HandoverPlan{Overlap: metav1.ConditionTrue, Reason: v1alpha1.ReasonHandoverScheduled,
		Message: fmt.Sprintf("The %s key set's token will be published at %s, %s before the current token expires",
			OtherKeySet(in.Active), stamp(at), hb)}
	// A deferral (the other key set's token was still in its hour) moved the handover later; it stands
	// while its condition does.
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionOverlap); c != nil &&
		c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonStandbyUnavailable && c.ObservedGeneration == in.Generation &&
		st.NextHandoverTime != nil && st.NextHandoverTime.After(at) && st.NextHandoverTime.Before(&metav1.Time{Time: in.Held.ExpiresAt}) {
		at, p.Keep = st.NextHandoverTime.Time, true
	}
	// After a failure nothing goes upstream before its retry slot.
	if slot, ok := RetrySlot(st.FailedRefreshAttempts, st.RenewalTime, in.Now); ok && slot.After(at) {
		at, p.Keep = slot, true
	}
	if !at.Before(in.Held.ExpiresAt) {
		return HandoverPlan{Keep: true} // renewed at expiry
	}
	p.At, p.Due = at, !in.Now.Before(at)
	return p
}

// HandoverCheck judges a token fetched with the other key set for a handover.
type HandoverCheck struct {
	Publish bool
	// RetryAt, when not Publish, is when the other key set's token has expired and a fresh one is
	// issued; zero: no handover for this token, it is renewed at its expiry with the active key set.
	RetryAt time.Time
	Message string
}

// CheckHandover decides whether got, fetched with the other key set, may replace the published token
// held. It must outlive held by about the handover window: otherwise the platform handed out that key's
// token of the hour (another holder of the key asked within it, or the clocks disagree), and publishing
// it would only bring the next handover forward to now. About, not strictly more: when another app
// holding the primary key renews it at its expiry, the primary's token outlives the standby's by
// exactly the window (the standby's was fetched a window before the primary's expiry), give or take
// the whole seconds of expires_in and the fetch's delay; demanding more lost every handover back, for
// good (TestStandbyHandsBackWhenThePrimaryKeyIsShared). handoverSlack bounds what is forgiven, so the
// next handover still comes at least half a window after this one.
func CheckHandover(handoverBefore time.Duration, held, got AppToken, other string) HandoverCheck {
	hb := EffectiveHandoverBefore(handoverBefore, held)
	if got.ExpiresAt.After(held.ExpiresAt) && !got.ExpiresAt.Before(held.ExpiresAt.Add(hb-handoverSlack(hb))) {
		return HandoverCheck{Publish: true}
	}
	why := fmt.Sprintf("The %s key set's token expires at %s, less than %s after the published token (%s): that key's token of the hour was handed out (another holder of the key, or clock skew)",
		other, stamp(got.ExpiresAt), hb, stamp(held.ExpiresAt))
	retry := got.ExpiresAt
	if t := renewal.Truncate(retry); !t.Equal(retry) {
		retry = t.Add(time.Second) // whole seconds, as in status, and after it expired
	}
	if retry.Before(held.ExpiresAt) {
		return HandoverCheck{RetryAt: retry, Message: why + "; next try at " + stamp(retry)}
	}
	return HandoverCheck{Message: fmt.Sprintf("%s; the token is renewed at its expiry with the %s key set", why, OtherKeySet(other))}
}

// HandoverRetry plans after the failures-th consecutive transient failure err of a handover: the
// backoff of any refresh (b), never past the published token's expiry, when renewal with the active key
// set takes over.
func HandoverRetry(b renewal.Backoff, failures int32, rnd float64, err error, held AppToken, other string, now time.Time) (time.Time, string) {
	at := PlanRetry(b, failures, rnd, err, held.ExpiresAt, now).At
	if at.After(held.ExpiresAt) {
		at = held.ExpiresAt
	}
	return at, fmt.Sprintf("Fetching the %s key set's token failed (%s, attempt %d); next try at %s, and from the token's expiry (%s) it is renewed with the %s key set",
		other, err.Error(), failures, stamp(at), stamp(held.ExpiresAt), OtherKeySet(other))
}

// handoverSlack is how much less than the handover window a token of the other key set may outlive the
// published one by and still be handed over to: the rounding of two whole-second expiries and a fetch's
// delay (2 s), never more than half the window.
func handoverSlack(hb time.Duration) time.Duration {
	return min(2*time.Second, hb/2)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
