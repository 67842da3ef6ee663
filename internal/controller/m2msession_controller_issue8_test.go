package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Issue 8 scenario 4: a session the gate held back copied the username's failure count into its status
// and kept it after another session of the username logged in; its next reconcile re-armed the shared
// gate, and a third session with the right password was refused without a login ever being tried.
func TestScenario4StaleFailureCountDoesNotLockOutAFixedUsername(t *testing.T) {
	f := m2mFixture(t, time.Hour)
	f.uws("a-creds", uwsUser, "Wr0ng!PasswordA")
	f.session("a", "a-creds")
	f.waitSession("a", metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, 10*time.Second)
	f.uws("b-creds", uwsUser, "Wr0ng!PasswordB")
	f.session("b", "b-creds")
	f.waitSession("b", metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, 10*time.Second)
	if info, _ := f.sim.M2MUser(uwsUser); info.ConsecutiveFailures != 2 {
		t.Fatalf("platform failures = %d, want 2 (one per wrong password)", info.ConsecutiveFailures)
	}

	// a's password is fixed: its login succeeds and the platform's count is back to 0.
	f.setUWSPassword("a-creds", uwsPassword)
	f.waitSession("a", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 10*time.Second)
	if info, _ := f.sim.M2MUser(uwsUser); info.ConsecutiveFailures != 0 {
		t.Fatalf("platform failures after a success = %d, want 0", info.ConsecutiveFailures)
	}
	// b still holds its refused password and reconciles again (any event would do).
	f.poke("b", "1")
	time.Sleep(time.Second)

	// A third session with the right password must log in: the username has no failures.
	f.uws("c-creds", uwsUser, uwsPassword)
	f.session("c", "c-creds")
	f.waitSession("c", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 10*time.Second)
	if info, _ := f.sim.M2MUser(uwsUser); info.ConsecutiveFailures != 0 || info.Locked {
		t.Fatalf("platform user after c: %+v", info)
	}
	// b's status follows the username's count too, so no restart can bring the stale 2 back.
	deadline := time.Now().Add(5 * time.Second)
	for f.getSession("b").Status.ConsecutiveLoginFailures != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("b still records %d failures for a username that logs in", f.getSession("b").Status.ConsecutiveLoginFailures)
		}
		f.poke("b", time.Now().String())
		time.Sleep(200 * time.Millisecond)
	}
	// And b's own refused password is still never sent again.
	if n := f.sim.Stats().Count(loginRoute, 400); n != 2 {
		t.Fatalf("refused logins = %d, want 2", n)
	}
}

// Issue 8 scenario 11: the gateway refusing every Bearer made the session controller requeue every
// second, with a login or keep-alive each time and no condition saying why.
func TestScenario11GatewayRejectingTheBearerBacksOff(t *testing.T) {
	f := m2mFixture(t, time.Hour)
	f.uws("uws", uwsUser, uwsPassword)
	f.session("s", "uws", func(s *v1alpha1.M2MSession) {
		// Keep-alives far apart: every call after the switch is a retry, not the schedule.
		s.Spec.KeepAlive.Interval = &metav1.Duration{Duration: 2 * time.Second}
	})
	f.waitSession("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 10*time.Second)
	tokens := f.tokenCalls()
	f.sim.SetM2MRejectBearers(true)
	f.waitSession("s", metav1.ConditionFalse, v1alpha1.ReasonBearerRejected, 10*time.Second)
	calls := func() int { return f.sim.Stats().Total(loginRoute) + f.sim.Stats().Total(accountPath) }
	start := calls()
	time.Sleep(6 * time.Second)
	// The suite's backoff (0.3 s doubling, capped at 2 s) fits 5 tries into 6 s; a 1 Hz loop makes 6+.
	if n := calls() - start; n > 5 {
		t.Errorf("%d upstream calls in 6 s while the gateway refuses the Bearer: no backoff", n)
	}
	if n := f.tokenCalls() - tokens; n > 1 {
		t.Errorf("%d app-token requests for one refused Bearer, want at most 1", n)
	}
	s := f.getSession("s")
	if s.Status.FailedAttempts < 3 {
		t.Errorf("failedAttempts = %d: the retries are not counted, so they cannot back off", s.Status.FailedAttempts)
	}
	if n := f.logins(); n != 1 {
		t.Errorf("logins = %d, want 1: a refused Bearer must not cost logins", n)
	}
	f.sim.SetM2MRejectBearers(false)
	s = f.waitSession("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 10*time.Second)
	if s.Status.FailedAttempts != 0 {
		t.Errorf("failedAttempts after recovery = %d", s.Status.FailedAttempts)
	}
}
