package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
)

var s0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func hourToken(issued time.Time) AppToken {
	return AppToken{AccessToken: "tok", IssuedAt: issued, ExpiresAt: issued.Add(time.Hour)}
}

func TestEffectiveHandoverBefore(t *testing.T) {
	cases := []struct {
		name string
		spec time.Duration
		tok  AppToken
		want time.Duration
	}{
		{"default", 0, hourToken(s0), v1alpha1.DefaultHandoverBefore},
		{"spec", 90 * time.Second, hourToken(s0), 90 * time.Second},
		{"clamped to a third of a short lifetime", 0, AppToken{IssuedAt: s0, ExpiresAt: s0.Add(9 * time.Minute)}, 3 * time.Minute},
		{"spec clamped too", 20 * time.Minute, AppToken{IssuedAt: s0, ExpiresAt: s0.Add(30 * time.Minute)}, 10 * time.Minute},
		{"unknown issue time: not clamped", 0, AppToken{ExpiresAt: s0.Add(6 * time.Minute)}, v1alpha1.DefaultHandoverBefore},
	}
	for _, c := range cases {
		if got := EffectiveHandoverBefore(c.spec, c.tok); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func overlapCond(status metav1.ConditionStatus, reason string, gen int64) []metav1.Condition {
	return []metav1.Condition{{Type: v1alpha1.ConditionOverlap, Status: status, Reason: reason, ObservedGeneration: gen}}
}

func TestPlanHandover(t *testing.T) {
	held := hourToken(s0)
	at := s0.Add(55 * time.Minute)
	later := metav1.NewTime(s0.Add(58 * time.Minute))
	cases := []struct {
		name    string
		in      HandoverInput
		due     bool
		at      time.Time
		keep    bool
		overlap metav1.ConditionStatus
		reason  string
	}{
		{name: "no standby: no plan, no condition", in: HandoverInput{Standby: StandbyNone}},
		{name: "scheduled", in: HandoverInput{Standby: StandbyReady, Now: s0.Add(time.Minute)},
			at: at, overlap: metav1.ConditionTrue, reason: v1alpha1.ReasonHandoverScheduled},
		{name: "a second early", in: HandoverInput{Standby: StandbyReady, Now: at.Add(-time.Second)},
			at: at, overlap: metav1.ConditionTrue, reason: v1alpha1.ReasonHandoverScheduled},
		{name: "due", in: HandoverInput{Standby: StandbyReady, Now: at},
			due: true, at: at, overlap: metav1.ConditionTrue, reason: v1alpha1.ReasonHandoverScheduled},
		{name: "spec handoverBefore", in: HandoverInput{Standby: StandbyReady, HandoverBefore: 90 * time.Second, Now: s0},
			at: held.ExpiresAt.Add(-90 * time.Second), overlap: metav1.ConditionTrue, reason: v1alpha1.ReasonHandoverScheduled},
		{name: "missing: renewal at expiry", in: HandoverInput{Standby: StandbyMissing, Problem: `credentials Secret "standby" not found`, Now: at},
			overlap: metav1.ConditionFalse, reason: v1alpha1.ReasonStandbyCredentialsNotFound},
		{name: "rejected: renewal at expiry", in: HandoverInput{Standby: StandbyRejected, Now: at},
			overlap: metav1.ConditionFalse, reason: v1alpha1.ReasonStandbyCredentialsRejected},
		{name: "deferred to when the other key's token expired", in: HandoverInput{Standby: StandbyReady, Generation: 1, Now: at,
			Status: &v1alpha1.ThingSpaceAppStatus{NextHandoverTime: &later, Conditions: overlapCond(metav1.ConditionFalse, v1alpha1.ReasonStandbyUnavailable, 1)}},
			at: later.Time, keep: true},
		{name: "a deferral of an older generation does not stand", in: HandoverInput{Standby: StandbyReady, Generation: 2, Now: at,
			Status: &v1alpha1.ThingSpaceAppStatus{NextHandoverTime: &later, Conditions: overlapCond(metav1.ConditionFalse, v1alpha1.ReasonStandbyUnavailable, 1)}},
			due: true, at: at, overlap: metav1.ConditionTrue, reason: v1alpha1.ReasonHandoverScheduled},
		{name: "retry slot after a failure", in: HandoverInput{Standby: StandbyReady, Now: at.Add(time.Second),
			Status: &v1alpha1.ThingSpaceAppStatus{RefreshStatus: v1alpha1.RefreshStatus{FailedRefreshAttempts: 1, RenewalTime: &later}}},
			at: later.Time, keep: true},
		{name: "retry slot reached", in: HandoverInput{Standby: StandbyReady, Now: later.Time,
			Status: &v1alpha1.ThingSpaceAppStatus{RefreshStatus: v1alpha1.RefreshStatus{FailedRefreshAttempts: 1, RenewalTime: &later}}},
			due: true, at: at, overlap: metav1.ConditionTrue, reason: v1alpha1.ReasonHandoverScheduled},
		{name: "given up for this token", in: HandoverInput{Standby: StandbyReady, GaveUp: held.ExpiresAt, Now: at}, keep: true},
		{name: "given up for another token", in: HandoverInput{Standby: StandbyReady, GaveUp: held.ExpiresAt.Add(-time.Hour), Now: at},
			due: true, at: at, overlap: metav1.ConditionTrue, reason: v1alpha1.ReasonHandoverScheduled},
	}
	for _, c := range cases {
		in := c.in
		in.Active, in.Held = v1alpha1.KeySetPrimary, held
		if in.Status == nil {
			in.Status = &v1alpha1.ThingSpaceAppStatus{}
		}
		p := PlanHandover(in)
		if p.Due != c.due || !p.At.Equal(c.at) || p.Keep != c.keep || (!c.keep && (p.Overlap != c.overlap || p.Reason != c.reason)) {
			t.Errorf("%s: %+v, want due %v at %v keep %v %s/%s", c.name, p, c.due, c.at, c.keep, c.overlap, c.reason)
		}
		if strings.Contains(p.Message, "tok") && !strings.Contains(p.Message, "token") {
			t.Errorf("%s: the message carries the token: %q", c.name, p.Message)
		}
	}
}

func TestPlanHandoverAlternatesWithFreshTokens(t *testing.T) {
	// Three handovers on a one-hour lifetime: each fetch comes after the other key's last token has
	// expired, so the platform issues a fresh one, which CheckHandover accepts.
	expiry := map[string]time.Time{v1alpha1.KeySetPrimary: {}, v1alpha1.KeySetStandby: {}}
	active, held := v1alpha1.KeySetPrimary, hourToken(s0)
	expiry[active] = held.ExpiresAt
	for i := range 3 {
		p := PlanHandover(HandoverInput{Standby: StandbyReady, Active: active, Held: held, Status: &v1alpha1.ThingSpaceAppStatus{}, Now: held.IssuedAt})
		other := OtherKeySet(active)
		if !expiry[other].Before(p.At) {
			t.Fatalf("handover %d at %v: the %s key's token is still valid until %v", i+1, p.At, other, expiry[other])
		}
		got := hourToken(p.At)
		if chk := CheckHandover(0, held, got, other); !chk.Publish {
			t.Fatalf("handover %d refused: %s", i+1, chk.Message)
		}
		active, held, expiry[other] = other, got, got.ExpiresAt
	}
	if active != v1alpha1.KeySetStandby {
		t.Fatalf("after three handovers %s is active", active)
	}
}

func TestCheckHandover(t *testing.T) {
	held := hourToken(s0)
	hb := EffectiveHandoverBefore(0, held)
	cases := []struct {
		name    string
		got     AppToken
		publish bool
		retry   time.Time
	}{
		{"a fresh token", hourToken(s0.Add(55 * time.Minute)), true, time.Time{}},
		{"the other key's token of the hour, expiring before: retry then", AppToken{ExpiresAt: s0.Add(57*time.Minute + 300*time.Millisecond)}, false, s0.Add(57*time.Minute + time.Second)},
		{"expiring with the published one: give up", AppToken{ExpiresAt: held.ExpiresAt}, false, time.Time{}},
		{"outliving it by less than the window: give up", AppToken{ExpiresAt: held.ExpiresAt.Add(4 * time.Minute)}, false, time.Time{}},
		// Another holder of the key renews it at its expiry: the other key's token outlives the published
		// one by the window itself, give or take whole seconds and the fetch's delay.
		{"outliving it by exactly the window: publish", AppToken{ExpiresAt: held.ExpiresAt.Add(hb)}, true, time.Time{}},
		{"by the window less a rounding: publish", AppToken{ExpiresAt: held.ExpiresAt.Add(hb - 1400*time.Millisecond)}, true, time.Time{}},
		{"by the window less more than the slack: give up", AppToken{ExpiresAt: held.ExpiresAt.Add(hb - 2500*time.Millisecond)}, false, time.Time{}},
	}
	for _, c := range cases {
		chk := CheckHandover(0, held, c.got, v1alpha1.KeySetStandby)
		if chk.Publish != c.publish || !chk.RetryAt.Equal(c.retry) {
			t.Errorf("%s: %+v, want publish %v retry %v", c.name, chk, c.publish, c.retry)
		}
		if !c.publish && chk.Message == "" {
			t.Errorf("%s: no message", c.name)
		}
	}
}

func TestHandoverRetryStopsAtExpiry(t *testing.T) {
	held := hourToken(s0)
	b := renewal.Backoff{Base: 10 * time.Minute, Cap: time.Hour, Factor: 2}
	now := held.ExpiresAt.Add(-time.Second)
	at, msg := HandoverRetry(b, 3, 0, errors.New("upstream unavailable"), held, v1alpha1.KeySetStandby, now)
	if at.After(held.ExpiresAt) {
		t.Fatalf("retry at %v, after the token's expiry %v", at, held.ExpiresAt)
	}
	if !strings.Contains(msg, "Primary key set") {
		t.Fatalf("message %q does not say the fallback", msg)
	}
	early, _ := HandoverRetry(b, 1, 0, errors.New("x"), held, v1alpha1.KeySetStandby, s0.Add(55*time.Minute))
	if want := s0.Add(57*time.Minute + 30*time.Second); !early.Equal(want) {
		t.Fatalf("first retry at %v, want %v (halfway to expiry)", early, want)
	}
}

func TestStandbyStillRejected(t *testing.T) {
	conds := overlapCond(metav1.ConditionFalse, v1alpha1.ReasonStandbyCredentialsRejected, 3)
	cases := []struct {
		rejected, version string
		gen               int64
		want              bool
	}{
		{"10", "10", 3, true},
		{"10", "11", 3, false},
		{"10", "10", 4, false},
		{"", "10", 3, false},
	}
	for _, c := range cases {
		if got := StandbyStillRejected(c.rejected, c.version, conds, c.gen); got != c.want {
			t.Errorf("%+v: %v", c, got)
		}
	}
}
