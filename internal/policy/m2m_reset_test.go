package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/upstream"
)

func resetErr(status int, code string, kind upstream.Kind) error {
	return upstream.StatusError(thingspace.API, thingspace.EndpointResetPassword, status, code, kind, 0)
}

func TestResetFailed(t *testing.T) {
	unanswered := upstream.TransportError(thingspace.API, thingspace.EndpointResetPassword, context.DeadlineExceeded)
	unanswered.Unanswered = true
	notWritten := upstream.TransportError(thingspace.API, thingspace.EndpointResetPassword, context.DeadlineExceeded)
	cases := []struct {
		name string
		err  error
		want ResetFailure
	}{
		{"timeout after the request was written", unanswered, ResetUnanswered},
		{"2xx without a readable newPassword", upstream.NewError(thingspace.API, thingspace.EndpointResetPassword, 200, upstream.Unknown, "malformed", nil), ResetUnanswered},
		{"never written", notWritten, ResetRetry},
		{"503", resetErr(503, "", upstream.Transient), ResetRetry},
		{"session expired", resetErr(400, "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired", upstream.Rejected), ResetSessionEnded},
		{"gateway 401", resetErr(401, "900901", upstream.Rejected), ResetBearerRejected},
		{"old password refused", resetErr(400, "UnifiedWebService.INPUT_INVALID.Password.Invalid", upstream.Rejected), ResetRefused},
		{"unknown status", resetErr(302, "", upstream.Unknown), ResetRefused},
	}
	for _, tc := range cases {
		if got := ResetFailed(tc.err); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// The record of an unanswered reset, in status, decides every pass until it is settled: a restart
// finds it there (the facts carry no memory of the process).
func TestDecideSessionUnansweredReset(t *testing.T) {
	sent := t0.Add(-time.Minute)
	base := func() SessionFacts {
		return SessionFacts{
			Now: t0, Created: t0.Add(-2 * time.Hour), Generation: 1, HasSession: true, CredentialsVersion: "7",
			Spec: v1alpha1.M2MSessionSpec{KeepAlive: v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: 10 * time.Minute}, AccountName: "acct"},
				PasswordRotation: &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: time.Hour}}},
			Status: v1alpha1.M2MSessionStatus{Conditions: ready(v1alpha1.ReasonSessionValid, 1),
				LastLoginTime: mt(t0.Add(-5 * time.Minute)), NextKeepAliveTime: mt(t0.Add(-time.Minute)),
				PasswordRotatedAt:       mt(sent),
				PasswordResetUnanswered: &v1alpha1.UnansweredPasswordReset{SentAt: *mt(sent), CredentialsVersion: "7"}},
			UnansweredResetStored: true,
		}
	}
	cases := []struct {
		name   string
		mutate func(*SessionFacts)
		action SessionAction
		next   time.Time
	}{
		{name: "stored: check, before the keep-alive that is due", action: SessionCheckPassword},
		{name: "not stored yet: wait for the record", mutate: func(f *SessionFacts) { f.UnansweredResetStored = false },
			action: SessionWait, next: t0.Add(UnansweredRecheck)},
		{name: "a person's refresh request waits for the check too", mutate: func(f *SessionFacts) {
			f.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "r1"}
		}, action: SessionCheckPassword},
		{name: "no session: still the check, not a plain login", mutate: func(f *SessionFacts) { f.HasSession = false }, action: SessionCheckPassword},
		{name: "a failed check backs off", mutate: func(f *SessionFacts) {
			f.Status.FailedAttempts = 2
			f.Status.NextKeepAliveTime = mt(t0.Add(4 * time.Second))
		}, action: SessionWait, next: t0.Add(4 * time.Second)},
		{name: "its backoff over: check again", mutate: func(f *SessionFacts) {
			f.Status.FailedAttempts = 2
			f.Status.NextKeepAliveTime = mt(t0)
		}, action: SessionCheckPassword},
		{name: "lost: nothing, whatever is due or asked", mutate: func(f *SessionFacts) {
			f.Status.PasswordResetUnanswered.Lost = true
			f.Status.RejectedCredentialsVersion = "7"
			f.Status.Conditions = ready(v1alpha1.ReasonPasswordLost, 1)
			f.Generation = 2
			f.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "r1"}
			f.Now = t0.Add(48 * time.Hour)
		}, action: SessionWait},
		{name: "the credentials Secret changed: the record is void", mutate: func(f *SessionFacts) {
			f.CredentialsVersion = "8"
			f.Status.PasswordResetUnanswered.Lost = true
		}, action: SessionKeepAlive},
		{name: "void record, rotation an interval after the unanswered reset", mutate: func(f *SessionFacts) {
			f.CredentialsVersion = "8"
			f.Now = sent.Add(time.Hour)
		}, action: SessionResetPassword},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			if tc.mutate != nil {
				tc.mutate(&f)
			}
			d := DecideSession(f)
			if d.Action != tc.action || !d.Next.Equal(tc.next) {
				t.Fatalf("%s next %v, want %s next %v", d.Action, d.Next, tc.action, tc.next)
			}
		})
	}
}

// While the record stands no reset falls due, however long ago the last one was.
func TestRotationStopsWhileAResetIsUnanswered(t *testing.T) {
	f := SessionFacts{Now: t0.Add(30 * 24 * time.Hour), Created: t0, CredentialsVersion: "7",
		Spec:   v1alpha1.M2MSessionSpec{PasswordRotation: &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: time.Hour}}},
		Status: v1alpha1.M2MSessionStatus{PasswordResetUnanswered: &v1alpha1.UnansweredPasswordReset{SentAt: *mt(t0), CredentialsVersion: "7"}}}
	if _, ok := RotationTime(f); ok || RotationDue(f) {
		t.Fatal("a rotation is planned while a reset is unanswered")
	}
	if next := t0.Add(31 * 24 * time.Hour); !SessionWake(f, next).Equal(next) {
		t.Fatal("the wake time is pulled in for a rotation")
	}
}

func TestPasswordCheck(t *testing.T) {
	gate := []struct {
		allowed, refused bool
		want             PasswordCheck
	}{
		{true, false, CheckLogin},
		{false, false, CheckHeld},
		{false, true, CheckLost},
		{true, true, CheckLost},
	}
	for _, tc := range gate {
		if got := PasswordCheckGate(tc.allowed, tc.refused); got != tc.want {
			t.Errorf("gate allowed=%v refused=%v: %s, want %s", tc.allowed, tc.refused, got, tc.want)
		}
	}
	login := func(status int, code string, kind upstream.Kind) error {
		return upstream.StatusError(thingspace.API, thingspace.EndpointLogin, status, code, kind, 0)
	}
	verdicts := []struct {
		name string
		err  error
		want PasswordCheck
	}{
		{"logged in", nil, CheckNotApplied},
		{"password refused", login(400, "UnifiedWebService.INPUT_INVALID.Password.Invalid", upstream.Rejected), CheckLost},
		{"unclassified answer", login(418, "", upstream.Unknown), CheckLost},
		{"gateway 401", login(401, "900901", upstream.Rejected), CheckBearerRejected},
		{"503", login(503, "", upstream.Transient), CheckRetry},
		{"timeout", upstream.TransportError(thingspace.API, thingspace.EndpointLogin, context.DeadlineExceeded), CheckRetry},
	}
	for _, tc := range verdicts {
		if got := PasswordCheckVerdict(tc.err); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	msg := PasswordLostMessage(v1alpha1.UnansweredPasswordReset{SentAt: *mt(t0)}, "refused", "uws")
	for _, want := range []string{t0.UTC().Format(time.RFC3339), "Reset the UWS password in ThingSpace", "credentials Secret uws", "no login is attempted"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}
