package policy

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
)

// Issue 8 scenario 11: a gateway 401 on the Bearer asks for one app-token refresh per episode and backs
// off, never pulled in by the keep-alive interval.
func TestBearerRejected(t *testing.T) {
	b := renewal.Backoff{Base: time.Second, Cap: time.Minute, Factor: 2}
	cases := []struct {
		name     string
		st       v1alpha1.M2MSessionStatus
		refresh  bool
		failures int32
		at       time.Time
	}{
		{name: "first 401 after a healthy session", st: v1alpha1.M2MSessionStatus{Conditions: ready(v1alpha1.ReasonSessionValid, 1)},
			refresh: true, failures: 1, at: t0.Add(time.Second)},
		{name: "first 401 after transient failures", st: v1alpha1.M2MSessionStatus{Conditions: ready(v1alpha1.ReasonUpstreamUnavailable, 1), FailedAttempts: 2},
			refresh: true, failures: 3, at: t0.Add(4 * time.Second)},
		{name: "no condition yet", refresh: true, failures: 1, at: t0.Add(time.Second)},
		{name: "second 401 of the episode: no second refresh", st: v1alpha1.M2MSessionStatus{Conditions: ready(v1alpha1.ReasonBearerRejected, 1), FailedAttempts: 1},
			failures: 2, at: t0.Add(2 * time.Second)},
		{name: "the backoff reaches its cap", st: v1alpha1.M2MSessionStatus{Conditions: ready(v1alpha1.ReasonBearerRejected, 1), FailedAttempts: 20},
			failures: 21, at: t0.Add(time.Minute)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := BearerRejected(b, tc.st, 0, t0)
			if p.RefreshApp != tc.refresh || p.Failures != tc.failures || !p.At.Equal(tc.at) {
				t.Fatalf("got %+v, want refresh %v failures %d at %v", p, tc.refresh, tc.failures, tc.at)
			}
			if !strings.Contains(p.Message, "401") || !strings.Contains(p.Message, tc.at.UTC().Format(time.RFC3339)) {
				t.Fatalf("message %q", p.Message)
			}
		})
	}
	// Sub-second slots round up: the status holds whole seconds, and a pass must never retry early.
	p := BearerRejected(renewal.Backoff{Base: 300 * time.Millisecond, Cap: time.Second, Factor: 2}, v1alpha1.M2MSessionStatus{}, 0, t0)
	if !p.At.Equal(t0.Add(time.Second)) {
		t.Fatalf("at %v, want rounded up to the second", p.At)
	}
}

// Issue 14 (chaos): the wait after a gateway 401 is tied to the refused token. An M2MSession whose
// app token was revoked (a renewBefore rotation) backed off up to 10 s after its app's Secret already
// held the new token; another token ends the wait at once, the same token never does.
func TestBearerWaitOver(t *testing.T) {
	refused, fresh := TokenDigest("refused"), TokenDigest("fresh")
	slot := t0.Add(8 * time.Second)
	base := func() SessionFacts {
		return SessionFacts{
			Now: t0, Created: t0.Add(-time.Hour), Generation: 1, HasSession: true, CredentialsVersion: "7", AppTokenDigest: fresh,
			Spec: v1alpha1.M2MSessionSpec{KeepAlive: v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: 10 * time.Minute}, AccountName: "acct"}},
			Status: v1alpha1.M2MSessionStatus{Conditions: ready(v1alpha1.ReasonBearerRejected, 1), FailedAttempts: 3,
				NextKeepAliveTime: mt(slot), RejectedTokenDigest: refused, LastLoginTime: mt(t0.Add(-5 * time.Minute))},
		}
	}
	cases := []struct {
		name   string
		mutate func(*SessionFacts)
		over   bool
		action SessionAction
		next   time.Time
	}{
		{name: "the app holds another token: keep alive now", over: true, action: SessionKeepAlive},
		{name: "another token, no account: log in again now", mutate: func(f *SessionFacts) { f.Spec.KeepAlive.AccountName = "" },
			over: true, action: SessionRelogin},
		{name: "another token, the refused call was the login", mutate: func(f *SessionFacts) { f.HasSession = false },
			over: true, action: SessionLogin},
		{name: "another token, the password reset is due", mutate: func(f *SessionFacts) {
			f.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: 30 * time.Minute}}
		}, over: true, action: SessionResetPassword},
		{name: "the same token: wait for the slot", mutate: func(f *SessionFacts) { f.AppTokenDigest = refused },
			action: SessionWait, next: slot},
		{name: "no refused token on record (an older operator's status): wait for the slot",
			mutate: func(f *SessionFacts) { f.Status.RejectedTokenDigest = "" }, action: SessionWait, next: slot},
		{name: "a transient failure since: its slot holds (Retry-After)", mutate: func(f *SessionFacts) {
			f.Status.Conditions = ready(v1alpha1.ReasonUpstreamUnavailable, 1)
		}, action: SessionWait, next: slot},
		{name: "refused credentials still win", mutate: func(f *SessionFacts) {
			f.Status.RejectedCredentialsVersion = "7"
			f.Status.Conditions = ready(v1alpha1.ReasonBearerRejected, 1)
			f.HasSession = false
		}, over: true, action: SessionWait},
		{name: "an unanswered reset's check: now, with the new token", mutate: func(f *SessionFacts) {
			f.Status.PasswordResetUnanswered = &v1alpha1.UnansweredPasswordReset{SentAt: *mt(t0.Add(-time.Minute)), CredentialsVersion: "7"}
			f.UnansweredResetStored = true
		}, over: true, action: SessionCheckPassword},
		{name: "an unanswered reset's check, the same token: its slot", mutate: func(f *SessionFacts) {
			f.Status.PasswordResetUnanswered = &v1alpha1.UnansweredPasswordReset{SentAt: *mt(t0.Add(-time.Minute)), CredentialsVersion: "7"}
			f.UnansweredResetStored = true
			f.AppTokenDigest = refused
		}, action: SessionWait, next: slot},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			if tc.mutate != nil {
				tc.mutate(&f)
			}
			if got := BearerWaitOver(f); got != tc.over {
				t.Fatalf("BearerWaitOver = %v, want %v", got, tc.over)
			}
			d := DecideSession(f)
			if d.Action != tc.action || !d.Next.Equal(tc.next) {
				t.Fatalf("got %s next %v, want %s next %v", d.Action, d.Next, tc.action, tc.next)
			}
		})
	}
}

// Issue 14 (chaos, seed 22): a renewBefore rotation revoked the app token while a session waited out a
// failed login's backoff, and its Secret kept the revoked token until the retry. Waiting keeps nothing
// from the Secret: it still follows the app's token (no upstream call), except over a handover's old
// pair, which works until its token expires.
func TestRetrySlotRepublishes(t *testing.T) {
	slot := t0.Add(8 * time.Second)
	base := func() SessionFacts {
		return SessionFacts{
			Now: t0, Created: t0.Add(-time.Hour), Generation: 1, HasSession: true, CredentialsVersion: "7", AppTokenDigest: TokenDigest("new"),
			Spec: v1alpha1.M2MSessionSpec{KeepAlive: v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: 10 * time.Minute}}},
			Status: v1alpha1.M2MSessionStatus{Conditions: ready(v1alpha1.ReasonUpstreamUnavailable, 1), FailedAttempts: 2, NextKeepAliveTime: mt(slot),
				LastLoginTime: mt(t0.Add(-5 * time.Minute)), LoginTokenDigest: TokenDigest("old"), LoginTokenExpiresAt: mt(t0.Add(-time.Second))},
		}
	}
	cases := []struct {
		name      string
		mutate    func(*SessionFacts)
		republish bool
	}{
		{name: "a transient failure's backoff", republish: true},
		{name: "a 401 with the same token", mutate: func(f *SessionFacts) {
			f.Status.Conditions = ready(v1alpha1.ReasonBearerRejected, 1)
			f.Status.RejectedTokenDigest = TokenDigest("new")
		}, republish: true},
		{name: "no session to publish", mutate: func(f *SessionFacts) { f.HasSession = false }},
		{name: "a handover's old pair still works", mutate: func(f *SessionFacts) {
			f.AppHasStandby = true
			f.Status.LoginTokenExpiresAt = mt(t0.Add(time.Minute))
		}},
		{name: "a standby app whose old token has expired", mutate: func(f *SessionFacts) { f.AppHasStandby = true }, republish: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			if tc.mutate != nil {
				tc.mutate(&f)
			}
			d := DecideSession(f)
			if d.Action != SessionWait || !d.Next.Equal(slot) || d.Republish != tc.republish {
				t.Fatalf("got %+v, want Wait until %v republish %v", d, slot, tc.republish)
			}
		})
	}
}
