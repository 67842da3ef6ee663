package policy

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
)

func TestDecideSessionHandover(t *testing.T) {
	oldTok, newTok := TokenDigest("old-token"), TokenDigest("new-token")
	// base: an app with a standby key set has just published a new token; the one the session logged
	// in with expires in 4 minutes; nothing else is due.
	base := func() SessionFacts {
		return SessionFacts{
			Now: t0, Created: t0.Add(-time.Hour), Generation: 1, HasSession: true, CredentialsVersion: "7",
			AppTokenDigest: newTok, AppHasStandby: true,
			Spec: v1alpha1.M2MSessionSpec{KeepAlive: v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: 10 * time.Minute}, AccountName: "acct"}},
			Status: v1alpha1.M2MSessionStatus{Conditions: ready(v1alpha1.ReasonSessionValid, 1),
				LastLoginTime: mt(t0.Add(-5 * time.Minute)), NextKeepAliveTime: mt(t0.Add(5 * time.Minute)),
				LoginTokenDigest: oldTok, LoginTokenExpiresAt: mt(t0.Add(4 * time.Minute))},
		}
	}
	cases := []struct {
		name   string
		mutate func(*SessionFacts)
		action SessionAction
	}{
		{"a new token while the login's is valid: handover", func(*SessionFacts) {}, SessionHandover},
		{"the app still holds the login's token", func(f *SessionFacts) { f.AppTokenDigest = oldTok }, SessionPublish},
		{"one key set: as before, no login", func(f *SessionFacts) { f.AppHasStandby = false }, SessionPublish},
		{"the login's token has expired: as under one key set", func(f *SessionFacts) { f.Now = t0.Add(4 * time.Minute) }, SessionPublish},
		{"expired, keep-alive due: the keep-alive (a tied platform's SessionToken error re-logs in)", func(f *SessionFacts) {
			f.Now = t0.Add(5 * time.Minute)
		}, SessionKeepAlive},
		{"no login token on record (an older operator's status)", func(f *SessionFacts) {
			f.Status.LoginTokenDigest, f.Status.LoginTokenExpiresAt = "", nil
		}, SessionPublish},
		{"handover before a due keep-alive", func(f *SessionFacts) {
			f.Status.NextKeepAliveTime = mt(t0)
		}, SessionHandover},
		{"handover before a due password reset", func(f *SessionFacts) {
			f.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: time.Hour}}
		}, SessionHandover},
		{"a failed handover login waits for its retry slot", func(f *SessionFacts) {
			f.Status.FailedAttempts, f.Status.NextKeepAliveTime = 1, mt(t0.Add(20*time.Second))
		}, SessionWait},
		{"refused credentials: no handover login", func(f *SessionFacts) {
			f.Status.RejectedCredentialsVersion = "7"
			f.Status.Conditions = ready(v1alpha1.ReasonLoginRejected, 1)
		}, SessionWait},
		{"no session: a plain login", func(f *SessionFacts) { f.HasSession = false }, SessionLogin},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			tc.mutate(&f)
			if d := DecideSession(f); d.Action != tc.action {
				t.Fatalf("got %+v, want %s", d, tc.action)
			}
		})
	}
}

func TestTokenDigest(t *testing.T) {
	d := TokenDigest("some-token")
	if len(d) != 64 || strings.Contains(d, "some-token") || d == TokenDigest("other-token") || d != TokenDigest("some-token") {
		t.Fatalf("digest %q", d)
	}
}

func TestSessionHandoverRetryLandsBeforeTheOldTokenExpires(t *testing.T) {
	b := renewal.Backoff{Base: time.Minute, Cap: time.Hour, Factor: 2}
	f := SessionFacts{Now: t0, Spec: v1alpha1.M2MSessionSpec{KeepAlive: v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: 10 * time.Minute}}},
		Status: v1alpha1.M2MSessionStatus{LoginTokenExpiresAt: mt(t0.Add(3 * time.Minute))}}
	for failures := int32(1); failures <= 6; failures++ {
		if got := SessionHandoverRetry(b, failures, 0, 0, f); got.After(t0.Add(90 * time.Second)) {
			t.Fatalf("failure %d: retry at %v, past halfway to the old token's expiry", failures, got.Sub(t0))
		}
	}
	// Past the expiry the keep-alive interval bounds it, as for any session call.
	f.Status.LoginTokenExpiresAt = mt(t0.Add(-time.Second))
	if got := SessionHandoverRetry(b, 6, 0, 0, f); !got.Equal(t0.Add(5 * time.Minute)) {
		t.Fatalf("retry at %v, want halfway through the keep-alive interval", got.Sub(t0))
	}
	// Retry-After is honoured.
	f.Status.LoginTokenExpiresAt = mt(t0.Add(3 * time.Minute))
	if got := SessionHandoverRetry(b, 1, 0, 2*time.Minute, f); !got.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("retry at %v, want Retry-After", got.Sub(t0))
	}
	// Chaos seed 22: a 503 answered 42 ms into a second with Retry-After 2 s; the slot, kept in whole
	// seconds by the status, must not fall inside it.
	f.Now = t0.Add(42 * time.Millisecond)
	got := SessionHandoverRetry(renewal.Backoff{Base: time.Second, Cap: time.Minute, Factor: 2}, 1, 0, 2*time.Second, f)
	if stored := renewal.Truncate(got); stored.Before(f.Now.Add(2 * time.Second)) {
		t.Fatalf("retry at %v, kept as %v: within the Retry-After ending at %v", got, stored, f.Now.Add(2*time.Second))
	}
}
