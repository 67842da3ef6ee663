package policy

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Issue 14 (chaos, seed 33): a new leader logged in again for a session its predecessor had just
// logged in with, killed between the Secret write and the status write. The Secret records the login,
// bound to its data; a status without it adopts it.
func TestParseHeldLogin(t *testing.T) {
	at := t0.Add(1500 * time.Millisecond)
	exp := "2026-12-01T11:00:00.000Z"
	v := SessionLoginValue("sess", "tok", exp, at)
	h, ok := ParseHeldLogin(v, "sess", "tok", exp)
	if !ok || !h.At.Equal(t0.Add(time.Second)) || h.TokenDigest != TokenDigest("tok") || !h.TokenExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("got %+v %v", h, ok)
	}
	for name, c := range map[string][4]string{
		"no annotation": {"", "sess", "tok", exp},
		"another session (edited, or a new login)": {v, "sess2", "tok", exp},
		"the app's next token published over it":   {v, "sess", "tok2", exp},
		"an edited expiry":                         {v, "sess", "tok", "2099-01-01T00:00:00.000Z"},
		"an edited login time":                     {"2026-12-01T10:00:09Z" + v[len("2026-12-01T10:00:01Z"):], "sess", "tok", exp},
		"no session":                               {SessionLoginValue("", "tok", exp, at), "", "tok", exp},
		"no separator":                             {"2026-12-01T10:00:01Z", "sess", "tok", exp},
	} {
		if _, ok := ParseHeldLogin(c[0], c[1], c[2], c[3]); ok {
			t.Errorf("%s: believed", name)
		}
	}
}

func TestAdoptHeldLogin(t *testing.T) {
	spec := v1alpha1.M2MSessionSpec{KeepAlive: v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: 10 * time.Minute}}}
	h := HeldLogin{At: t0, TokenDigest: TokenDigest("new"), TokenExpiresAt: t0.Add(time.Hour)}
	before := func() v1alpha1.M2MSessionStatus {
		// The status the predecessor wrote before the handover login it was killed after.
		return v1alpha1.M2MSessionStatus{LastLoginTime: mt(t0.Add(-50 * time.Minute)), LoginTokenDigest: TokenDigest("old"),
			LoginTokenExpiresAt: mt(t0.Add(5 * time.Minute)), NextKeepAliveTime: mt(t0.Add(-time.Second)), LastKeepAliveTime: mt(t0.Add(-10 * time.Minute)),
			Conditions: ready(v1alpha1.ReasonSessionValid, 1)}
	}
	cases := []struct {
		name   string
		mutate func(*v1alpha1.M2MSessionStatus)
		adopt  bool
		check  func(*testing.T, v1alpha1.M2MSessionStatus)
	}{
		{name: "status write lost after a handover login", adopt: true, check: func(t *testing.T, st v1alpha1.M2MSessionStatus) {
			if !st.LastLoginTime.Time.Equal(t0) || st.LoginTokenDigest != TokenDigest("new") || !st.LoginTokenExpiresAt.Time.Equal(t0.Add(time.Hour)) ||
				!st.NextKeepAliveTime.Time.Equal(t0.Add(10*time.Minute)) {
				t.Fatalf("adopted %+v", st)
			}
		}},
		{name: "status write lost after the first login", mutate: func(st *v1alpha1.M2MSessionStatus) { *st = v1alpha1.M2MSessionStatus{} }, adopt: true},
		{name: "the status knows the login", mutate: func(st *v1alpha1.M2MSessionStatus) { st.LastLoginTime = mt(t0) }},
		{name: "the status knows a later login (the annotation is stale)", mutate: func(st *v1alpha1.M2MSessionStatus) { st.LastLoginTime = mt(t0.Add(time.Minute)) }},
		{name: "failures the login cleared", mutate: func(st *v1alpha1.M2MSessionStatus) {
			st.FailedAttempts, st.RejectedTokenDigest = 2, "x"
			st.ConsecutiveLoginFailures, st.LoginFailuresObservedAt = 1, mt(t0.Add(-time.Minute))
		}, adopt: true, check: func(t *testing.T, st v1alpha1.M2MSessionStatus) {
			if st.FailedAttempts != 0 || st.RejectedTokenDigest != "" || st.ConsecutiveLoginFailures != 0 || !st.LoginFailuresObservedAt.Time.Equal(t0) {
				t.Fatalf("adopted %+v", st)
			}
		}},
		{name: "a later failure count observed elsewhere stays", mutate: func(st *v1alpha1.M2MSessionStatus) {
			st.ConsecutiveLoginFailures, st.LoginFailuresObservedAt = 1, mt(t0.Add(time.Minute))
		}, adopt: true, check: func(t *testing.T, st v1alpha1.M2MSessionStatus) {
			if st.ConsecutiveLoginFailures != 1 {
				t.Fatalf("adopted %+v", st)
			}
		}},
		{name: "the check of an unanswered reset logged in: not applied", mutate: func(st *v1alpha1.M2MSessionStatus) {
			st.PasswordResetUnanswered = &v1alpha1.UnansweredPasswordReset{SentAt: *mt(t0.Add(-time.Minute)), CredentialsVersion: "7"}
		}, adopt: true, check: func(t *testing.T, st v1alpha1.M2MSessionStatus) {
			if st.PasswordResetUnanswered != nil {
				t.Fatalf("the unanswered reset still stands: %+v", st.PasswordResetUnanswered)
			}
		}},
		{name: "a password known lost stays lost", mutate: func(st *v1alpha1.M2MSessionStatus) {
			st.PasswordResetUnanswered = &v1alpha1.UnansweredPasswordReset{SentAt: *mt(t0.Add(-time.Minute)), CredentialsVersion: "7", Lost: true}
		}, adopt: true, check: func(t *testing.T, st v1alpha1.M2MSessionStatus) {
			if st.PasswordResetUnanswered == nil {
				t.Fatal("a lost password's record went")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := before()
			if tc.mutate != nil {
				tc.mutate(&st)
			}
			orig := *st.DeepCopy()
			if got := AdoptHeldLogin(&st, h, spec); got != tc.adopt {
				t.Fatalf("adopted %v, want %v", got, tc.adopt)
			}
			if !tc.adopt && st.LastLoginTime.Time != orig.LastLoginTime.Time {
				t.Fatal("the status changed without an adoption")
			}
			if tc.check != nil {
				tc.check(t, st)
			}
		})
	}
	// Adopted, the handover the lost status write left looking due is not.
	st := before()
	AdoptHeldLogin(&st, h, spec)
	f := SessionFacts{Now: t0.Add(2 * time.Second), Spec: spec, Generation: 1, HasSession: true, Status: st, AppTokenDigest: TokenDigest("new"), AppHasStandby: true}
	if d := DecideSession(f); d.Action != SessionPublish {
		t.Fatalf("after the adoption: %s, want Publish", d.Action)
	}
	f.Status = before()
	if d := DecideSession(f); d.Action != SessionHandover {
		t.Fatalf("without it: %s, want Handover (the login repeated)", d.Action)
	}
}
