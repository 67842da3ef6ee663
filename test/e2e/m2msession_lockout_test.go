package e2e

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// TestM2MWrongPasswordNeverLocks: a wrong password shared by two M2MSessions of one username is sent
// at most twice in all, the username is never locked, nothing more is sent across a manager restart,
// and correcting each credentials Secret recovers its session. Serial: it restarts the suite's manager.
func TestM2MWrongPasswordNeverLocks(t *testing.T) {
	user, pw := "locked-uws", uwsPassword()
	wrong := uwsPassword()
	sensitive.AddUWSCredentials(user, wrong)
	env := newM2MEnv(t, longLifetime, m2mIdle, map[string]string{user: pw})
	ns, sim := env.ns, env.sim
	createUWS(t, ns, "uws-a", user, wrong)
	createUWS(t, ns, "uws-b", user, wrong)
	newSession(t, ns, "a", "uws-a")
	newSession(t, ns, "b", "uws-b")

	// safe checks the simulator's side: at most 2 login attempts, the user never locked.
	safe := func(when string) {
		t.Helper()
		info := m2mUser(t, sim, user)
		if n := calls(t, sim, harness.RouteM2MLogin, 0); n > 2 || info.Locked || info.ConsecutiveFailures > 2 {
			t.Fatalf("%s: %d login attempts, user locked=%v with %d consecutive failures; want at most 2 attempts, never locked: %v",
				when, n, info.Locked, info.ConsecutiveFailures, stats(t, sim))
		}
	}
	for _, name := range []string{"a", "b"} {
		s := waitSession(t, ns, name, 30*time.Second, "Ready=False reason "+v1alpha1.ReasonLoginRejected, func(s *v1alpha1.M2MSession) bool {
			safe("waiting for LoginRejected")
			ready, reason := harness.SessionReady(s)
			return !ready && reason == v1alpha1.ReasonLoginRejected
		})
		if s.Status.RejectedCredentialsVersion == "" || s.Status.ConsecutiveLoginFailures < 1 || s.Status.ConsecutiveLoginFailures > 2 {
			t.Errorf("%s: status rejectedCredentialsVersion %q, consecutiveLoginFailures %d; want set, 1 or 2",
				name, s.Status.RejectedCredentialsVersion, s.Status.ConsecutiveLoginFailures)
		}
		if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name + "-session"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s: session Secret exists (err %v), want none without a session", name, err)
		}
	}
	attempts := calls(t, sim, harness.RouteM2MLogin, 0)
	if attempts < 1 || calls(t, sim, harness.RouteM2MLogin, 400) != attempts {
		t.Errorf("login attempts with the wrong password: %v, want 1 or 2, all refused", stats(t, sim))
	}
	time.Sleep(3 * m2mInterval) // several keep-alive intervals: no retry loop
	safe("before the restart")
	t.Logf("%d login attempt(s) with the wrong password shared by two sessions; the user has %d consecutive failures",
		attempts, m2mUser(t, sim, user).ConsecutiveFailures)

	if err := mgr.Stop(); err != nil {
		t.Errorf("the manager did not shut down cleanly: %v", err)
	}
	restarted := time.Now()
	if err := mgr.Start(t.Context()); err != nil {
		t.Fatalf("restart the manager: %v", err)
	}
	// The restarted manager has reconciled both sessions once it reports them in its gauge (the gauges
	// live in the process, so they are new).
	err := harness.WaitFor(t.Context(), 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		text, err := mgr.Metrics()
		if err != nil {
			return false, nil
		}
		for _, name := range []string{"a", "b"} {
			if _, ok := harness.MetricValue(text, "thingspace_m2m_session_ready_status", map[string]string{"namespace": ns, "name": name, "condition": "True"}); !ok {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the restarted manager did not report both sessions: %v", err)
	}
	t.Logf("sessions reconciled %v after the restart began", time.Since(restarted).Round(10*time.Millisecond))
	time.Sleep(3 * m2mInterval)
	safe("after the restart")
	if n := calls(t, sim, harness.RouteM2MLogin, 0); n != attempts {
		t.Errorf("login attempts went from %d to %d across the restart, with the credentials unchanged: %v", attempts, n, stats(t, sim))
	}
	for _, name := range []string{"a", "b"} {
		if ready, reason := harness.SessionReady(getSession(t, ns, name)); ready || reason != v1alpha1.ReasonLoginRejected {
			t.Errorf("%s: Ready=%v reason %s after the restart, want False %s", name, ready, reason, v1alpha1.ReasonLoginRejected)
		}
	}
	// The restarted manager exports the username's failures per session (the ThingSpaceUWSLoginFailures
	// alert reads them), under a keyed hash: the username itself is never in the metrics.
	if text, err := mgr.Metrics(); err != nil {
		t.Errorf("metrics after the restart: %v", err)
	} else {
		for _, name := range []string{"a", "b"} {
			v, ok := harness.MetricValue(text, "thingspace_m2m_login_consecutive_failures", map[string]string{"namespace": ns, "name": name})
			if !ok || v < 1 || v > 2 {
				t.Errorf("%s: thingspace_m2m_login_consecutive_failures = %v (present %v), want 1 or 2", name, v, ok)
			}
		}
		if strings.Contains(text, user) {
			t.Errorf("the metrics name the UWS username %q", user)
		}
	}

	// Correcting a credentials Secret is enough: the operator watches it.
	for i, name := range []string{"a", "b"} {
		setUWSPassword(t, ns, "uws-"+name, pw)
		fixed := time.Now()
		s := waitSessionCondition(t, ns, name, metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 10*time.Second)
		t.Logf("%s: Ready %v after its credentials were corrected", name, time.Since(fixed).Round(10*time.Millisecond))
		if s.Status.ConsecutiveLoginFailures != 0 || s.Status.RejectedCredentialsVersion != "" {
			t.Errorf("%s: status after recovery: consecutiveLoginFailures %d, rejectedCredentialsVersion %q; want both cleared",
				name, s.Status.ConsecutiveLoginFailures, s.Status.RejectedCredentialsVersion)
		}
		if err := sessionAccepted(t, sim, readSession(t, ns, name+"-session")); err != nil {
			t.Errorf("%s: the simulator does not accept the recovered session: %v", name, err)
		}
		if n := calls(t, sim, harness.RouteM2MLogin, 200); n != i+1 {
			t.Errorf("%s: %d successful logins, want %d", name, n, i+1)
		}
	}
	info := m2mUser(t, sim, user)
	if info.Locked || info.ConsecutiveFailures != 0 || info.ActiveSessions != 2 {
		t.Errorf("simulator user at the end: locked=%v, %d consecutive failures, %d live sessions; want unlocked, 0, 2",
			info.Locked, info.ConsecutiveFailures, info.ActiveSessions)
	}
	if n := calls(t, sim, harness.RouteM2MLogin, 0); n > attempts+2 {
		t.Errorf("%d login attempts in all, want %d refused + 2", n, attempts)
	}
}

// TestM2MTwoWrongPasswordsThenCorrected: two M2MSessions of one username with two different wrong
// passwords spend the operator's two automatic attempts; nothing more is sent, the username is never
// locked, and doing what the condition says (correct the credentials Secret, and if that is not enough
// set the refresh-requested annotation) recovers.
func TestM2MTwoWrongPasswordsThenCorrected(t *testing.T) {
	t.Parallel()
	user, pw := "twice-uws", uwsPassword()
	env := newM2MEnv(t, longLifetime, m2mIdle, map[string]string{user: pw})
	ns, sim := env.ns, env.sim
	createUWS(t, ns, "uws-a", user, uwsPassword())
	createUWS(t, ns, "uws-b", user, uwsPassword())
	newSession(t, ns, "a", "uws-a")
	waitSessionCondition(t, ns, "a", metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, 30*time.Second)
	newSession(t, ns, "b", "uws-b")
	waitSessionCondition(t, ns, "b", metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, 30*time.Second)
	time.Sleep(3 * m2mInterval)
	info := m2mUser(t, sim, user)
	if n := calls(t, sim, harness.RouteM2MLogin, 0); n != 2 || info.Locked || info.ConsecutiveFailures != 2 {
		t.Fatalf("%d login attempts, user locked=%v with %d consecutive failures; want 2 (one per wrong password), not locked",
			n, info.Locked, info.ConsecutiveFailures)
	}

	setUWSPassword(t, ns, "uws-a", pw)
	fixed := time.Now()
	recovered := func(within time.Duration) bool {
		return harness.WaitFor(t.Context(), within, 50*time.Millisecond, func() (bool, error) {
			ready, _ := harness.SessionReady(getSession(t, ns, "a"))
			return ready, nil
		}) == nil
	}
	if recovered(5 * time.Second) {
		t.Logf("a: Ready %v after its credentials Secret was corrected", time.Since(fixed).Round(10*time.Millisecond))
	} else {
		// After two failures the operator stops trying by itself and says what to do:
		t.Logf("a: not Ready after its credentials Secret was corrected: %s", describeSession(getSession(t, ns, "a")))
		s := getSession(t, ns, "a")
		patch := client.MergeFrom(s.DeepCopy())
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[v1alpha1.RefreshRequestedAnnotation] = "e2e-retry-1"
		if err := k8s.Patch(t.Context(), s, patch); err != nil {
			t.Fatal(err)
		}
		requested := time.Now()
		if !recovered(10 * time.Second) {
			t.Fatalf("a: not Ready with the correct password and the refresh-requested annotation, as the condition asked: %s; simulator: %d login attempts, %d consecutive failures",
				describeSession(getSession(t, ns, "a")), calls(t, sim, harness.RouteM2MLogin, 0), m2mUser(t, sim, user).ConsecutiveFailures)
		}
		t.Logf("a: Ready %v after the refresh-requested annotation", time.Since(requested).Round(10*time.Millisecond))
	}
	info = m2mUser(t, sim, user)
	if n, ok := calls(t, sim, harness.RouteM2MLogin, 0), calls(t, sim, harness.RouteM2MLogin, 200); n != 3 || ok != 1 || info.Locked || info.ConsecutiveFailures != 0 {
		t.Errorf("after recovery: %d login attempts (%d answered 200), user locked=%v with %d consecutive failures; want 3 (1), unlocked, 0",
			n, ok, info.Locked, info.ConsecutiveFailures)
	}
	if err := sessionAccepted(t, sim, readSession(t, ns, "a-session")); err != nil {
		t.Errorf("a: the simulator does not accept the recovered session: %v", err)
	}
}
