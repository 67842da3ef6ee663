package policy

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
)

func ready(reason string, gen int64) []metav1.Condition {
	status := metav1.ConditionFalse
	if reason == v1alpha1.ReasonSessionValid {
		status = metav1.ConditionTrue
	}
	return []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, ObservedGeneration: gen}}
}

func TestDecideSession(t *testing.T) {
	created := t0.Add(-time.Hour)
	base := func() SessionFacts {
		return SessionFacts{
			Now: t0, Created: created, Generation: 1, HasSession: true, CredentialsVersion: "7",
			Spec: v1alpha1.M2MSessionSpec{KeepAlive: v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: 10 * time.Minute}, AccountName: "acct"}},
			Status: v1alpha1.M2MSessionStatus{Conditions: ready(v1alpha1.ReasonSessionValid, 1),
				LastLoginTime: mt(t0.Add(-5 * time.Minute)), NextKeepAliveTime: mt(t0.Add(5 * time.Minute))},
		}
	}
	rotation := func(every time.Duration) func(*SessionFacts) {
		return func(f *SessionFacts) {
			f.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: every}}
		}
	}
	cases := []struct {
		name      string
		mutate    []func(*SessionFacts)
		action    SessionAction
		next      time.Time
		request   string
		republish bool
	}{
		{name: "nothing due: publish, wake at the keep-alive", action: SessionPublish, next: t0.Add(5 * time.Minute)},
		{name: "no session: login", mutate: []func(*SessionFacts){func(f *SessionFacts) { f.HasSession = false }}, action: SessionLogin},
		{name: "keep-alive due", mutate: []func(*SessionFacts){func(f *SessionFacts) { f.Now = t0.Add(5 * time.Minute) }}, action: SessionKeepAlive},
		{name: "keep-alive due without an account: relogin", mutate: []func(*SessionFacts){func(f *SessionFacts) {
			f.Now = t0.Add(6 * time.Minute)
			f.Spec.KeepAlive.AccountName = ""
		}}, action: SessionRelogin},
		{name: "refresh request: login, recorded", mutate: []func(*SessionFacts){func(f *SessionFacts) {
			f.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "r1"}
		}}, action: SessionLogin, request: "r1"},
		{name: "refresh request already observed", mutate: []func(*SessionFacts){func(f *SessionFacts) {
			f.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "r1"}
			f.Status.ObservedRefreshRequest = "r1"
		}}, action: SessionPublish, next: t0.Add(5 * time.Minute)},
		{name: "refused credentials unchanged: wait for a watch", mutate: []func(*SessionFacts){func(f *SessionFacts) {
			f.HasSession = false
			f.Status.RejectedCredentialsVersion = "7"
			f.Status.Conditions = ready(v1alpha1.ReasonLoginRejected, 1)
		}}, action: SessionWait},
		{name: "refused credentials, spec changed since: try", mutate: []func(*SessionFacts){func(f *SessionFacts) {
			f.HasSession = false
			f.Status.RejectedCredentialsVersion = "7"
			f.Status.Conditions = ready(v1alpha1.ReasonLoginRejected, 1)
			f.Generation = 2
		}}, action: SessionLogin},
		{name: "refused credentials, then a person asks", mutate: []func(*SessionFacts){func(f *SessionFacts) {
			f.HasSession = false
			f.Status.RejectedCredentialsVersion = "7"
			f.Status.Conditions = ready(v1alpha1.ReasonLoginRejected, 1)
			f.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "r2"}
		}}, action: SessionLogin, request: "r2"},
		{name: "retry slot ahead: nothing upstream before it", mutate: []func(*SessionFacts){func(f *SessionFacts) {
			f.Status.FailedAttempts = 2
			f.Status.NextKeepAliveTime = mt(t0.Add(30 * time.Second))
		}}, action: SessionWait, next: t0.Add(30 * time.Second), republish: true},
		{name: "retry slot reached", mutate: []func(*SessionFacts){func(f *SessionFacts) {
			f.Status.FailedAttempts = 2
			f.Status.NextKeepAliveTime = mt(t0)
		}}, action: SessionKeepAlive},
		{name: "retry slot ahead, a person asks", mutate: []func(*SessionFacts){func(f *SessionFacts) {
			f.Status.FailedAttempts = 2
			f.Status.NextKeepAliveTime = mt(t0.Add(30 * time.Second))
			f.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "r3"}
		}}, action: SessionLogin, request: "r3"},
		{name: "rotation due from creation", mutate: []func(*SessionFacts){rotation(time.Hour)}, action: SessionResetPassword},
		{name: "rotation due before a keep-alive", mutate: []func(*SessionFacts){rotation(time.Hour), func(f *SessionFacts) { f.Now = t0.Add(5 * time.Minute) }}, action: SessionResetPassword},
		{name: "rotation not due: wake at the earlier of reset and keep-alive", mutate: []func(*SessionFacts){rotation(time.Hour), func(f *SessionFacts) {
			f.Status.PasswordRotatedAt = mt(t0.Add(-58 * time.Minute))
		}}, action: SessionPublish, next: t0.Add(2 * time.Minute)},
		{name: "rotation refused for these credentials", mutate: []func(*SessionFacts){rotation(time.Hour), func(f *SessionFacts) {
			f.Status.PasswordRotationRejectedVersion = "7"
		}}, action: SessionPublish, next: t0.Add(5 * time.Minute)},
		{name: "rotation refused for older credentials", mutate: []func(*SessionFacts){rotation(time.Hour), func(f *SessionFacts) {
			f.Status.PasswordRotationRejectedVersion = "6"
		}}, action: SessionResetPassword},
		// The app rotated its token: the Secret gets it before the call, not after the call's answer.
		{name: "keep-alive due, the app's token rotated: publish first", mutate: []func(*SessionFacts){func(f *SessionFacts) {
			f.Now, f.SecretBearerStale = t0.Add(5*time.Minute), true
		}}, action: SessionKeepAlive, republish: true},
		{name: "re-login due, the app's token rotated: publish first", mutate: []func(*SessionFacts){func(f *SessionFacts) {
			f.Now, f.SecretBearerStale, f.Spec.KeepAlive.AccountName = t0.Add(5*time.Minute), true, ""
		}}, action: SessionRelogin, republish: true},
		{name: "no session, the app's token rotated: the login writes both", mutate: []func(*SessionFacts){func(f *SessionFacts) {
			f.HasSession, f.SecretBearerStale = false, true
		}}, action: SessionLogin},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			for _, m := range tc.mutate {
				m(&f)
			}
			d := DecideSession(f)
			if d.Action != tc.action || !d.Next.Equal(tc.next) || d.RefreshRequest != tc.request || d.Republish != tc.republish {
				t.Fatalf("got %+v, want action %s next %v request %q republish %v", d, tc.action, tc.next, tc.request, tc.republish)
			}
		})
	}
}

func TestKeepAliveInterval(t *testing.T) {
	if got := KeepAliveInterval(v1alpha1.M2MSessionSpec{}); got != DefaultKeepAlive {
		t.Fatalf("default = %v", got)
	}
	if got := KeepAliveInterval(v1alpha1.M2MSessionSpec{KeepAlive: v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: time.Minute}}}); got != time.Minute {
		t.Fatalf("set = %v", got)
	}
}

func TestSessionRetryPullsInWithinTheKeepAlive(t *testing.T) {
	b := renewal.Backoff{Base: time.Minute, Cap: time.Hour, Factor: 2}
	spec := v1alpha1.M2MSessionSpec{KeepAlive: v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: 4 * time.Minute}}}
	if got := SessionRetry(b, 5, 0, 0, spec, t0); !got.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("retry at %v, want halfway through the keep-alive interval", got)
	}
	if got := SessionRetry(b, 1, 0, 3*time.Minute, spec, t0); !got.Equal(t0.Add(3 * time.Minute)) {
		t.Fatalf("retry at %v, want Retry-After honoured", got)
	}
}

// The status keeps whole seconds: a slot inside a second is rounded up, so that a pass woken by a watch
// and gated on the stored time never calls within Retry-After.
func TestSessionRetryRoundsUpToTheSecond(t *testing.T) {
	b := renewal.Backoff{Base: time.Second, Cap: time.Minute, Factor: 2}
	spec := v1alpha1.M2MSessionSpec{KeepAlive: v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: 5 * time.Second}}}
	answered := t0.Add(75 * time.Millisecond)
	got := SessionRetry(b, 1, 0, 2*time.Second, spec, answered)
	if got.Before(answered.Add(2*time.Second)) || !got.Equal(renewal.Truncate(got)) {
		t.Fatalf("retry at %v: before Retry-After (%v) or not a whole second", got, answered.Add(2*time.Second))
	}
	if stored := renewal.Truncate(got); stored.Before(answered.Add(2 * time.Second)) {
		t.Fatalf("status would keep %v, within Retry-After", stored)
	}
}
