package fakeclock

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/controller"
	"github.com/credops/thingspace-operator/internal/inflight"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// rotatingSession creates session "s" resetting its password every 15 minutes, waits until it is
// Ready, and returns when its first reset falls due.
func rotatingSession(f *fixture) time.Time {
	f.t.Helper()
	f.create(newSession("s", func(s *v1alpha1.M2MSession) {
		s.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: 15 * time.Minute}}
	}))
	sess := &v1alpha1.M2MSession{}
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.settle(300 * time.Millisecond)
	f.get("s", sess)
	return sess.CreationTimestamp.Add(15 * time.Minute)
}

// walk steps the fake clock forward by d in steps of step, letting the operator act at each.
func (f *fixture) walk(d, step time.Duration) {
	for end := f.clk.Now().Add(d); f.clk.Now().Before(end); {
		f.step(step)
		f.settle(200 * time.Millisecond)
	}
}

// Issue 8 (left alone by scenario 5): a password reset that reached the platform, which applied it,
// but whose answer was lost (the connection dropped, or a 2xx without a readable newPassword) was
// retried with the old password, which the platform refused; the session then logged in with the old
// password, was refused, and Ready said LoginRejected, as if the person had typed a wrong password. The
// reset is sent once; one login with the old password settles that it applied; Ready says the
// password is lost and what to do; nothing logs in again until the credentials Secret changes.
func TestIssue8ResetWithLostAnswerIsReportedLost(t *testing.T) {
	for _, answer := range []simulator.M2MResetAnswer{simulator.M2MResetAnswerDrop, simulator.M2MResetAnswerUnreadable} {
		t.Run(string(answer), func(t *testing.T) {
			f := newFixture(t, simulator.Config{TokenLifetime: 24 * time.Hour, ResetEndsSessions: true})
			m2mWorld(f)
			due := rotatingSession(f)
			f.sim.SetM2MResetAnswer(answer)
			f.stepTo(due)
			f.eventually("the reset", 20*time.Second, func() bool { return f.sim.Stats().Total(resetRoute) > 0 })
			f.settle(500 * time.Millisecond)
			// Two hours on: backoff, keep-alives, the next rotation interval.
			f.walk(2*time.Hour, 5*time.Minute)

			st := f.sim.Stats()
			if n := st.Total(resetRoute); n != 1 {
				t.Errorf("%d password resets, want exactly 1 (a reset whose answer was lost was sent again)", n)
			}
			if n := st.Total(loginRoute) - 1; n > 1 {
				t.Errorf("%d logins after the reset, want at most 1 (with the old password)", n)
			}
			info, _ := f.sim.M2MUser(uwsUser)
			if info.Locked || info.ConsecutiveFailures > 1 {
				t.Errorf("the username has %d consecutive failures (locked %v), want at most 1", info.ConsecutiveFailures, info.Locked)
			}
			sess := &v1alpha1.M2MSession{}
			c := f.condition("s", sess, v1alpha1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonPasswordLost {
				t.Fatalf("Ready %+v, want False/%s", c, v1alpha1.ReasonPasswordLost)
			}
			if n := f.events("s", v1alpha1.ReasonPasswordLost); n != 1 {
				t.Errorf("%d %s events, want 1", n, v1alpha1.ReasonPasswordLost)
			}

			// A person resets the password in ThingSpace and updates the Secret: the session comes back.
			f.sim.SetM2MResetAnswer(simulator.M2MResetAnswerNormal)
			creds := f.secretObject("uws")
			creds.Data[v1alpha1.CredentialsKeyPassword] = []byte(info.Password)
			must(t, k8s.Update(context.Background(), creds))
			f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
		})
	}
}

// Issue 8: a reset whose request was written and never answered may not have been applied either (a
// gateway that lost it). It used to be retried with backoff: a second reset within the interval. One
// login with the old password now shows that it was not applied; the session carries on and the next
// reset is an interval later.
func TestIssue8ResetWithLostAnswerNotAppliedResumesNextInterval(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: 24 * time.Hour},
		func(o *controller.Options) { o.UpstreamTimeout = 3 * time.Second })
	m2mWorld(f)
	due := rotatingSession(f)
	f.sim.SetM2MResetAnswer(simulator.M2MResetHangUnapplied)
	f.stepTo(due)
	f.eventually("the reset to time out", 30*time.Second, func() bool { return f.sim.Stats().Total(resetRoute) > 0 })
	f.sim.SetM2MResetAnswer(simulator.M2MResetAnswerNormal)
	f.settle(500 * time.Millisecond)
	// Not quite an interval on: nothing resets again.
	f.walk(10*time.Minute, 2*time.Minute)

	if n := f.sim.Stats().Total(resetRoute); n != 1 {
		t.Errorf("%d password resets within the interval, want exactly 1", n)
	}
	if n := f.sim.Stats().Total(loginRoute) - 1; n != 1 {
		t.Errorf("%d logins after the unanswered reset, want exactly 1 (with the old password)", n)
	}
	sess := &v1alpha1.M2MSession{}
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	if got := string(f.secretData("uws")[v1alpha1.CredentialsKeyPassword]); got != uwsPassword {
		t.Fatal("the credentials Secret changed, though no reset was applied")
	}
	// The next interval: one reset, answered this time.
	f.walk(10*time.Minute, 2*time.Minute)
	if n := f.sim.Stats().Count(resetRoute, 200); n != 1 {
		t.Errorf("%d answered resets an interval later, want 1", n)
	}
	info, _ := f.sim.M2MUser(uwsUser)
	if got := string(f.secretData("uws")[v1alpha1.CredentialsKeyPassword]); got != info.Password {
		t.Error("the credentials Secret does not hold the platform's password after the next reset")
	}
}

// secretObject reads Secret name.
func (f *fixture) secretObject(name string) *corev1.Secret {
	f.t.Helper()
	s := &corev1.Secret{}
	must(f.t, k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: name}, s))
	return s
}

// Issue 8: the record of an unanswered reset is what the next process acts on. A process stopped after
// recording it (the platform had applied the reset) leaves it in status; the next one sends no reset and
// settles it with one login: the password is lost.
func TestIssue8ResetWithLostAnswerRecordHonouredAfterRestart(t *testing.T) {
	f := newOwnFixture(t, "m2m-reset-restart", "S3cret-restart")
	ns, clk, sim := f.ns, f.clk, f.sim
	stop := m2mManager(t, ns, clk, &inflight.Tracker{})
	m2mWorld(f)
	f.create(newSession("s", func(s *v1alpha1.M2MSession) {
		s.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: 15 * time.Minute}}
		s.Spec.LogoutOnDelete = new(bool)
	}))
	sess := &v1alpha1.M2MSession{}
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	stop()

	// What the stopped process left: the platform applied a reset whose answer never came, and the
	// status records it.
	sim.SetM2MUser(uwsUser, "Pl4tformChosen1")
	creds := f.secretObject("uws")
	f.get("s", sess)
	sent := metav1.NewTime(clk.Now())
	sess.Status.PasswordRotatedAt = &sent
	sess.Status.PasswordResetUnanswered = &v1alpha1.UnansweredPasswordReset{SentAt: sent, CredentialsVersion: creds.ResourceVersion}
	must(t, k8s.Status().Update(context.Background(), sess))
	sim.ResetStats()
	clk.Step(20 * time.Minute) // the next keep-alive and the rotation are both due

	m2mManager(t, ns, clk, &inflight.Tracker{})
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonPasswordLost)
	for range 4 {
		clk.Step(10 * time.Minute)
		time.Sleep(200 * time.Millisecond)
	}
	st := sim.Stats()
	if n := st.Total(resetRoute); n != 0 {
		t.Errorf("%d resets after the restart, want 0", n)
	}
	if n := st.Total(loginRoute); n != 1 {
		t.Errorf("%d logins after the restart, want exactly 1 (with the old password)", n)
	}
	if n := f.events("s", v1alpha1.ReasonPasswordLost); n != 1 {
		t.Errorf("%d %s events, want 1", n, v1alpha1.ReasonPasswordLost)
	}
}
