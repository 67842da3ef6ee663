package fakeclock

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

const (
	loginRoute   = "POST /api/m2m/v1/session/login"
	accountRoute = "GET /api/m2m/v1/accounts/{accountName}"
)

// wakesAt is when the last reconcile of the session asked to be looked at again.
func (f *fixture) wakesAt(name string) time.Time {
	f.t.Helper()
	out, ok := f.lastResult("M2MSession", name)
	if !ok || out.err != nil || out.res.RequeueAfter <= 0 {
		f.t.Fatalf("last reconcile of %s: %+v", name, out)
	}
	return out.at.Add(out.res.RequeueAfter)
}

// The keep-alive and rotation schedule on the fake clock: a session asks to be woken exactly when its
// keep-alive is due, stepping there costs exactly one keep-alive (no login), and the password reset
// falls due at creation + interval, costing exactly one reset, which also counts as a keep-alive.
func TestM2MKeepAliveAndRotationDueOnTheFakeClock(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: 24 * time.Hour})
	m2mWorld(f)
	f.create(newSession("s", func(s *v1alpha1.M2MSession) {
		s.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: 25 * time.Minute}}
	}))
	sess := &v1alpha1.M2MSession{}
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.settle(300 * time.Millisecond)
	f.get("s", sess)
	created := sess.CreationTimestamp.Time
	next := sess.Status.NextKeepAliveTime.Time
	if want := sess.Status.LastLoginTime.Add(10 * time.Minute); !next.Equal(want) {
		t.Fatalf("nextKeepAliveTime %v, want login + 10m = %v", next, want)
	}
	if at := f.wakesAt("s"); at.Before(next) || at.After(next.Add(time.Second)) {
		t.Fatalf("asked to be woken at %v, want the keep-alive at %v", at, next)
	}

	// Just before the keep-alive: nothing upstream.
	f.stepTo(next.Add(-time.Second))
	f.settle(300 * time.Millisecond)
	if n := f.sim.Stats().Total(accountRoute); n != 0 {
		t.Fatalf("%d keep-alives before one was due", n)
	}
	for i := 1; i <= 2; i++ {
		f.stepTo(next)
		f.eventually("keep-alive", 20*time.Second, func() bool { return f.sim.Stats().Total(accountRoute) == i })
		f.settle(300 * time.Millisecond)
		f.get("s", sess)
		next = sess.Status.NextKeepAliveTime.Time
	}
	if n := f.sim.Stats().Total(loginRoute); n != 1 {
		t.Fatalf("%d logins across keep-alives, want 1", n)
	}
	// The reset is due at creation + 25m, before the keep-alive planned at about login + 30m.
	rotation := created.Add(25 * time.Minute)
	if at := f.wakesAt("s"); !at.Before(next) || at.Before(rotation) || at.After(rotation.Add(time.Second)) {
		t.Fatalf("asked to be woken at %v, want the reset at %v (before the keep-alive at %v)", at, rotation, next)
	}
	f.stepTo(rotation)
	f.eventually("the reset", 20*time.Second, func() bool { return f.sim.Stats().Count(resetRoute, 200) == 1 })
	f.settle(300 * time.Millisecond)
	f.get("s", sess)
	if sess.Status.PasswordRotatedAt == nil || sess.Status.LastKeepAliveTime == nil || !sess.Status.PasswordRotatedAt.Equal(sess.Status.LastKeepAliveTime) {
		t.Fatalf("status after the reset: %+v", sess.Status)
	}
	info, _ := f.sim.M2MUser(uwsUser)
	if got := string(f.secretData("uws")[v1alpha1.CredentialsKeyPassword]); got != info.Password || got == uwsPassword {
		t.Fatal("the credentials Secret does not hold the reset password")
	}
	// The next reset is a whole interval later; nothing repeats it meanwhile.
	f.step(20 * time.Minute)
	f.settle(300 * time.Millisecond)
	if n := f.sim.Stats().Total(resetRoute); n != 1 {
		t.Fatalf("%d resets within one interval, want 1", n)
	}
}

// Without an account to read, the session is replaced by a login when the keep-alive is due, not
// before.
func TestM2MReloginDueOnTheFakeClock(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: 24 * time.Hour})
	m2mWorld(f)
	f.create(newSession("s", func(s *v1alpha1.M2MSession) { s.Spec.KeepAlive.AccountName = "" }))
	sess := &v1alpha1.M2MSession{}
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.settle(300 * time.Millisecond)
	f.get("s", sess)
	due := sess.Status.NextKeepAliveTime.Time
	f.stepTo(due.Add(-time.Second))
	f.settle(300 * time.Millisecond)
	if n := f.sim.Stats().Total(loginRoute); n != 1 {
		t.Fatalf("%d logins before the interval ended, want 1", n)
	}
	f.stepTo(due)
	f.eventually("the second login", 20*time.Second, func() bool { return f.sim.Stats().Total(loginRoute) == 2 })
	f.settle(300 * time.Millisecond)
	if n := f.sim.Stats().Total(loginRoute); n != 2 {
		t.Fatalf("%d logins after one interval, want 2", n)
	}
	if n := f.sim.Stats().Total(accountRoute); n != 0 {
		t.Fatalf("%d keep-alive reads without an account", n)
	}
}
