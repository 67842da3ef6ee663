package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// setResetDelay makes the simulator apply each password reset at once and hold its answer for d (the
// admin switch; never faulted or counted).
func setResetDelay(t *testing.T, sim *harness.Sim, d time.Duration) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, sim.URL+"/admin/m2m/reset-delay",
		strings.NewReader(fmt.Sprintf(`{"delay":%q}`, d.String())))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("set the reset delay: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("set the reset delay: status %d", resp.StatusCode)
	}
}

// TestM2MPasswordResetSurvivesSIGTERM (issue 8 scenario 5): SIGTERM while a password reset waits for its
// answer (the platform has applied it) lets the reset complete and its new password be stored in the
// credentials Secret before the manager exits; after the restart the stored password logs in. Serial:
// it restarts the suite's manager.
func TestM2MPasswordResetSurvivesSIGTERM(t *testing.T) {
	// Within the suite's --upstream-timeout (3 s): a slower answer is lost to the timeout, not to SIGTERM.
	const hold = 2 * time.Second
	user, pw := "sigterm-uws", uwsPassword()
	env := newM2MEnv(t, longLifetime, m2mIdle, map[string]string{user: pw})
	ns, sim := env.ns, env.sim
	t.Cleanup(func() {
		if !mgr.Running() {
			if err := mgr.Start(context.Background()); err != nil {
				t.Errorf("start the manager again: %v", err)
			}
		}
	})
	createUWS(t, ns, "uws", user, pw)
	setResetDelay(t, sim, hold)
	newSession(t, ns, "s", "uws", func(s *v1alpha1.M2MSession) {
		s.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: 4 * time.Second}}
	})
	waitSessionReady(t, ns, "s")
	// The platform applies the reset and holds the answer: SIGTERM now.
	if err := harness.WaitFor(t.Context(), 20*time.Second, 20*time.Millisecond, func() (bool, error) {
		return m2mUser(t, sim, user).Password != pw, nil
	}); err != nil {
		t.Fatalf("no reset was applied: %v", err)
	}
	stopping := time.Now()
	if err := mgr.Stop(); err != nil {
		t.Errorf("the manager did not shut down cleanly: %v", err)
	}
	t.Logf("the manager exited %v after SIGTERM (the answer was held %v)", time.Since(stopping).Round(10*time.Millisecond), hold)
	platform := m2mUser(t, sim, user).Password
	sensitive.Add("a UWS password", platform)
	switch stored := uwsPasswordIn(t, ns, "uws"); stored {
	case platform:
	case pw:
		t.Fatal("after SIGTERM the credentials Secret holds the old password: the reset's answer was lost")
	default:
		t.Fatal("after SIGTERM the credentials Secret holds neither the old nor the platform's password")
	}
	if n := calls(t, sim, harness.RouteM2MReset, 200); n != 1 {
		t.Errorf("%d resets answered before the restart, want 1", n)
	}
	if st := getSession(t, ns, "s").Status; st.PasswordRotatedAt == nil {
		t.Errorf("after SIGTERM the status does not record the reset (the next process would repeat it): %s", describeSession(getSession(t, ns, "s")))
	}

	setResetDelay(t, sim, 0)
	if err := mgr.Start(t.Context()); err != nil {
		t.Fatalf("restart the manager: %v", err)
	}
	waitSessionReady(t, ns, "s")
	if info := m2mUser(t, sim, user); info.Locked || info.ConsecutiveFailures != 0 {
		t.Errorf("after the restart the user has %d failures (locked %v)", info.ConsecutiveFailures, info.Locked)
	}
}
