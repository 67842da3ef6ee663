package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// Compressed time for the M2M (UWS) sessions: the simulator ends a session after m2mIdle without use
// (ThingSpace: 20 minutes) and the sessions are kept alive every m2mInterval (default 10 minutes).
const (
	m2mIdle     = 3 * time.Second
	m2mInterval = time.Second
	m2mAccount  = "0000123456-00001"
	// m2mHealWithin bounds how long a session the platform ended may stay in the Secret.
	m2mHealWithin = 2 * time.Second
	// m2mFollowWithin bounds how long after the app's Secret changes the session Secret carries its token.
	m2mFollowWithin = 2 * time.Second
)

// m2mEnv is one M2M test's own simulator (its counts are the test's alone), namespace, and a Ready
// ThingSpaceApp "app" (token in Secret "app-token") whose token is the Bearer of every session call.
type m2mEnv struct {
	sim *harness.Sim
	ns  string
}

// newM2MEnv starts a simulator with one app (tokens living tokenLifetime), the UWS users
// (name → password, passed in a --m2m-users-file) and sessions idling out after idle, then a
// namespace with the app, and waits until the app is Ready.
func newM2MEnv(t *testing.T, tokenLifetime string, idle time.Duration, users map[string]string) *m2mEnv {
	t.Helper()
	key := "m2m-" + randHex(8)
	secret := "m2m-app-" + randHex(12)
	sensitive.AddCredentials(key, secret)
	var file strings.Builder
	for _, name := range slices.Sorted(maps.Keys(users)) {
		sensitive.AddUWSCredentials(name, users[name])
		fmt.Fprintf(&file, "%s:%s\n", name, users[name])
	}
	usersFile := filepath.Join(workDir, "m2m-users-"+fileBase(t)+".txt")
	if err := os.WriteFile(usersFile, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--app", key + ":" + secret, "--token-lifetime", tokenLifetime,
		"--m2m-users-file", usersFile, "--m2m-idle-timeout", idle.String(),
	}
	sim := startSim(t, harness.SimConfig{Args: args})
	ns := newNamespace(t)
	// Runs before newNamespace's cleanup (which deletes the app) and before the simulator stops.
	t.Cleanup(func() { cleanupSessions(t, ns) })
	createCredentials(t, ns, "app-creds", key, secret)
	createApp(t, harness.NewApp(ns, "app", sim.URL, "app-creds", "app-token"))
	waitReady(t, ns, "app")
	readToken(t, ns, "app-token")
	return &m2mEnv{sim: sim, ns: ns}
}

// cleanupSessions records the status of every M2MSession left in ns for the leak check and deletes
// them, finalizers removed (their simulator is about to go).
func cleanupSessions(t *testing.T, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list := &v1alpha1.M2MSessionList{}
	if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
		t.Errorf("cleanup: list M2MSessions: %v", err)
		return
	}
	for i := range list.Items {
		cleanUp(ctx, t, "M2MSession", &list.Items[i], list.Items[i].Status)
	}
}

// uwsPassword returns a random password that meets the UWS rules (upper, lower, digit, symbol).
func uwsPassword() string { return "Uw!" + randHex(10) + "9z" }

func createUWS(t *testing.T, ns, name, username, password string) {
	t.Helper()
	sensitive.AddUWSCredentials(username, password)
	if err := harness.CreateUWSCredentials(t.Context(), k8s, ns, name, username, password); err != nil {
		t.Fatalf("create UWS credentials Secret %s: %v", name, err)
	}
}

// setUWSPassword replaces the password in a UWS credentials Secret.
func setUWSPassword(t *testing.T, ns, name, password string) {
	t.Helper()
	sensitive.Add("a UWS password", password)
	s := &corev1.Secret{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	s.Data[harness.UWSPassword] = []byte(password)
	if err := k8s.Update(t.Context(), s); err != nil {
		t.Fatalf("update UWS credentials Secret %s: %v", name, err)
	}
}

func uwsPasswordIn(t *testing.T, ns, name string) string {
	t.Helper()
	s := &corev1.Secret{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	pw := string(s.Data[harness.UWSPassword])
	sensitive.Add("a UWS password", pw)
	return pw
}

// newSession creates an M2MSession of the app "app", kept alive every m2mInterval with an account read.
func newSession(t *testing.T, ns, name, creds string, mutate ...func(*v1alpha1.M2MSession)) {
	t.Helper()
	s := harness.NewM2MSession(ns, name, "app", creds, name+"-session", m2mInterval, m2mAccount)
	for _, m := range mutate {
		m(s)
	}
	if err := k8s.Create(t.Context(), s); err != nil {
		t.Fatalf("create M2MSession %s: %v", name, err)
	}
}

func getSession(t *testing.T, ns, name string) *v1alpha1.M2MSession {
	t.Helper()
	s := &v1alpha1.M2MSession{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		t.Fatalf("get M2MSession %s: %v", name, err)
	}
	return s
}

// waitSession polls the M2MSession until ok holds.
func waitSession(t *testing.T, ns, name string, timeout time.Duration, what string, ok func(*v1alpha1.M2MSession) bool) *v1alpha1.M2MSession {
	t.Helper()
	var last *v1alpha1.M2MSession
	err := harness.WaitFor(t.Context(), timeout, 50*time.Millisecond, func() (bool, error) {
		s := &v1alpha1.M2MSession{}
		if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		last = s
		return ok(s), nil
	})
	if err != nil {
		t.Fatalf("M2MSession %s/%s: waiting for %s: %v; last status: %s", ns, name, what, err, describeSession(last))
	}
	return last
}

// waitSessionCondition waits until Ready has the given status and reason for the current generation.
func waitSessionCondition(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string, timeout time.Duration) *v1alpha1.M2MSession {
	t.Helper()
	return waitSession(t, ns, name, timeout, fmt.Sprintf("Ready=%s reason %s", status, reason), func(s *v1alpha1.M2MSession) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Status == status && c.Reason == reason && c.ObservedGeneration == s.Generation
	})
}

func waitSessionReady(t *testing.T, ns, name string) *v1alpha1.M2MSession {
	t.Helper()
	return waitSessionCondition(t, ns, name, metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 30*time.Second)
}

func describeSession(s *v1alpha1.M2MSession) string {
	if s == nil {
		return "(not found)"
	}
	c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil {
		return fmt.Sprintf("no Ready condition (generation %d)", s.Generation)
	}
	return fmt.Sprintf("Ready=%s reason=%s message=%q observedGeneration=%d/%d loginFailures=%d failedAttempts=%d",
		c.Status, c.Reason, c.Message, c.ObservedGeneration, s.Generation, s.Status.ConsecutiveLoginFailures, s.Status.FailedAttempts)
}

// readSession reads a session Secret and records its tokens for the leak check.
func readSession(t *testing.T, ns, secretName string) harness.SessionSecret {
	t.Helper()
	ss, err := harness.ReadSession(t.Context(), k8s, ns, secretName)
	if err != nil {
		t.Fatalf("read session Secret: %v", err)
	}
	sensitive.Add("a session token", ss.SessionToken)
	sensitive.Add("a token", ss.AccessToken)
	return ss
}

// m2mUser returns the simulator's view of a UWS user and records its current password.
func m2mUser(t *testing.T, sim *harness.Sim, name string) harness.M2MUserInfo {
	t.Helper()
	info, err := sim.M2MUser(name)
	if err != nil {
		t.Fatalf("simulator user %s: %v", name, err)
	}
	sensitive.AddUWSCredentials(name, info.Password)
	return info
}

func activeSessions(t *testing.T, sim *harness.Sim) int {
	t.Helper()
	n, err := sim.ActiveM2MSessions()
	if err != nil {
		t.Fatalf("simulator sessions: %v", err)
	}
	return n
}

// sessionAccepted tells whether the simulator accepts the session in a session Secret, with the
// Bearer the Secret carries (one counted account read, which also keeps the session alive).
func sessionAccepted(t *testing.T, sim *harness.Sim, ss harness.SessionSecret) error {
	t.Helper()
	return sim.M2MAccount(t.Context(), ss.AccessToken, ss.SessionToken, m2mAccount)
}

// TestM2MSessionSoak: one login keeps a session alive through many idle timeouts, with keep-alives at
// the configured interval and nothing else upstream; the Secret carries the session and the app's
// token, and Ready stays True throughout.
func TestM2MSessionSoak(t *testing.T) {
	t.Parallel()
	const idleTimeouts = 5
	user, pw := "soak-uws", uwsPassword()
	env := newM2MEnv(t, longLifetime, m2mIdle, map[string]string{user: pw})
	ns, sim := env.ns, env.sim
	createUWS(t, ns, "uws", user, pw)
	newSession(t, ns, "s", "uws")
	sess := waitSessionReady(t, ns, "s")

	first := readSession(t, ns, "s-session")
	appTok, appExp := readToken(t, ns, "app-token")
	if first.AccessToken != appTok || !first.AccessTokenExpiresAt.Equal(appExp) {
		t.Errorf("the session Secret's access token or its expiry (%v) is not the app's (%v)", first.AccessTokenExpiresAt, appExp)
	}
	sec := &corev1.Secret{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "s-session"}, sec); err != nil {
		t.Fatal(err)
	}
	if got := sec.Labels[v1alpha1.ManagedByLabel]; got != v1alpha1.ManagedByValue {
		t.Errorf("label %s = %q, want %q", v1alpha1.ManagedByLabel, got, v1alpha1.ManagedByValue)
	}
	if ref := metav1.GetControllerOf(sec); ref == nil || ref.UID != sess.UID || ref.Kind != "M2MSession" {
		t.Errorf("controller reference = %+v, want M2MSession s (uid %s)", ref, sess.UID)
	}
	if keys := slices.Sorted(maps.Keys(sec.Data)); !slices.Equal(keys, []string{harness.KeyAccessToken, harness.KeyAccessTokenExpiresAt, harness.KeySessionToken}) {
		t.Errorf("session Secret data keys = %v", keys)
	}
	if !controllerutil.ContainsFinalizer(sess, v1alpha1.LogoutFinalizer) {
		t.Errorf("finalizers = %v, want %s (logoutOnDelete defaults to true)", sess.Finalizers, v1alpha1.LogoutFinalizer)
	}
	if sess.Status.LastLoginTime == nil || sess.Status.NextKeepAliveTime == nil {
		t.Errorf("status: lastLoginTime %v, nextKeepAliveTime %v; want both set", sess.Status.LastLoginTime, sess.Status.NextKeepAliveTime)
	}

	keepAlives0 := calls(t, sim, harness.RouteM2MAccount, 0)
	start := time.Now()
	soak := idleTimeouts * m2mIdle
	notReady := ""
	for time.Since(start) < soak {
		s := getSession(t, ns, "s")
		if ready, _ := harness.SessionReady(s); !ready && notReady == "" {
			notReady = describeSession(s)
			t.Errorf("Ready went away %v into the soak: %s", time.Since(start).Round(10*time.Millisecond), notReady)
		}
		if ss := readSession(t, ns, "s-session"); ss.SessionToken != first.SessionToken {
			t.Fatalf("the session in the Secret changed %v into the soak (the platform ended it, or a needless login)", time.Since(start).Round(10*time.Millisecond))
		}
		if n := calls(t, sim, harness.RouteM2MLogin, 0); n != 1 {
			t.Fatalf("%d logins %v into the soak, want 1: %v", n, time.Since(start).Round(10*time.Millisecond), stats(t, sim))
		}
		time.Sleep(200 * time.Millisecond)
	}
	elapsed := time.Since(start)
	keepAlives := calls(t, sim, harness.RouteM2MAccount, 0) - keepAlives0
	ok := calls(t, sim, harness.RouteM2MAccount, 200)
	planned := int(elapsed / m2mInterval)
	t.Logf("%d idle timeouts of %v (%v): 1 login, %d keep-alives (%d planned at %v)", idleTimeouts, m2mIdle,
		elapsed.Round(10*time.Millisecond), keepAlives, planned, m2mInterval)
	// Every keep-alive is one account read per interval: fewer and the session is at risk, many more
	// is a loop.
	if keepAlives < planned*6/10 || keepAlives > planned*3/2+2 {
		t.Errorf("%d keep-alives in %v at an interval of %v, want about %d: %v", keepAlives, elapsed.Round(time.Millisecond), m2mInterval, planned, stats(t, sim))
	}
	if n := calls(t, sim, harness.RouteM2MAccount, 0); ok != n {
		t.Errorf("keep-alives answered other than 200: %v", stats(t, sim))
	}
	for _, route := range []string{harness.RouteM2MLogout, harness.RouteM2MReset} {
		if n := calls(t, sim, route, 0); n != 0 {
			t.Errorf("%d calls to %s, want none", n, route)
		}
	}
	if n := calls(t, sim, harness.RouteToken, 0); n != 1 {
		t.Errorf("token requests = %d, want 1 (hour-long tokens)", n)
	}
	info := m2mUser(t, sim, user)
	if info.ActiveSessions != 1 || info.Logins != 1 || activeSessions(t, sim) != 1 {
		t.Errorf("simulator: user has %d live sessions and %d logins, %d live in all; want 1, 1, 1", info.ActiveSessions, info.Logins, activeSessions(t, sim))
	}
	sess = getSession(t, ns, "s")
	if ka := sess.Status.LastKeepAliveTime; ka == nil || time.Since(ka.Time) > 2*m2mInterval+time.Second {
		t.Errorf("status.lastKeepAliveTime = %v, want within the last interval or two", ka)
	}
	if err := sessionAccepted(t, sim, readSession(t, ns, "s-session")); err != nil {
		t.Errorf("the simulator does not accept the session in the Secret after the soak: %v", err)
	}
}

// TestM2MSessionExpiryHealed: a session the platform ends (expired from the simulator's side) is
// replaced by one login within m2mHealWithin, every time, and the new session works.
func TestM2MSessionExpiryHealed(t *testing.T) {
	t.Parallel()
	const expiries = 3
	user, pw := "expiry-uws", uwsPassword()
	env := newM2MEnv(t, longLifetime, m2mIdle, map[string]string{user: pw})
	ns, sim := env.ns, env.sim
	createUWS(t, ns, "uws", user, pw)
	newSession(t, ns, "s", "uws")
	waitSessionReady(t, ns, "s")
	cur := readSession(t, ns, "s-session")

	for i := 1; i <= expiries; i++ {
		n, err := sim.ExpireM2MSessions()
		if err != nil {
			t.Fatal(err)
		}
		expired := time.Now()
		if n != 1 {
			t.Fatalf("expiry %d: the simulator had %d live sessions, want 1", i, n)
		}
		var next harness.SessionSecret
		err = harness.WaitFor(t.Context(), 10*time.Second, 20*time.Millisecond, func() (bool, error) {
			ss, err := harness.ReadSession(t.Context(), k8s, ns, "s-session")
			if err != nil {
				return false, err
			}
			next = ss
			return ss.SessionToken != cur.SessionToken, nil
		})
		healed := time.Since(expired)
		if err != nil {
			t.Fatalf("expiry %d: the expired session is still in the Secret: %v; status: %s", i, err, describeSession(getSession(t, ns, "s")))
		}
		sensitive.Add("a session token", next.SessionToken)
		t.Logf("expiry %d: new session in the Secret %v after the platform ended the old one", i, healed.Round(10*time.Millisecond))
		if healed > m2mHealWithin {
			t.Errorf("expiry %d: healed after %v, want within %v", i, healed.Round(10*time.Millisecond), m2mHealWithin)
		}
		if err := sessionAccepted(t, sim, next); err != nil {
			t.Errorf("expiry %d: the simulator does not accept the new session: %v", i, err)
		}
		waitSessionCondition(t, ns, "s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 2*time.Second)
		if n, ok := calls(t, sim, harness.RouteM2MLogin, 0), calls(t, sim, harness.RouteM2MLogin, 200); n != 1+i || ok != n {
			t.Errorf("expiry %d: %d logins (%d answered 200), want %d: one per expiry", i, n, ok, 1+i)
		}
		cur = next
		time.Sleep(1500 * time.Millisecond) // a few keep-alives of the new session
	}
	if n := calls(t, sim, harness.RouteM2MLogin, 0); n != 1+expiries {
		t.Errorf("%d logins after %d expiries, want %d", n, expiries, 1+expiries)
	}
	if info := m2mUser(t, sim, user); info.ActiveSessions != 1 {
		t.Errorf("the user has %d live sessions, want 1", info.ActiveSessions)
	}
}

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
			if _, ok := harness.MetricValue(text, "thingspace_m2m_session_ready", map[string]string{"namespace": ns, "name": name}); !ok {
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

// TestM2MAppRotationReachesTheSessionSecret: every rotation of the app's token reaches the session
// Secret's access_token (and its expiry) within m2mFollowWithin of the app's Secret changing, at no
// cost in logins.
func TestM2MAppRotationReachesTheSessionSecret(t *testing.T) {
	t.Parallel()
	const rotations = 3
	user, pw := "rotation-uws", uwsPassword()
	env := newM2MEnv(t, lifetime.String(), m2mIdle, map[string]string{user: pw})
	ns, sim := env.ns, env.sim
	createUWS(t, ns, "uws", user, pw)
	newSession(t, ns, "s", "uws")
	waitSessionReady(t, ns, "s")
	session := readSession(t, ns, "s-session").SessionToken

	appTok, _ := readToken(t, ns, "app-token")
	appChanged := time.Time{} // when the app's Secret was first seen with a token the session Secret lacks
	seen := 0
	deadline := time.Now().Add(time.Duration(rotations+2) * lifetime)
	for seen < rotations {
		now := time.Now()
		if now.After(deadline) {
			t.Fatalf("saw %d app rotations reach the session Secret in %v, want %d", seen, time.Duration(rotations+2)*lifetime, rotations)
		}
		tok, exp, err := harness.ReadToken(t.Context(), k8s, ns, "app-token")
		if err != nil {
			t.Fatal(err)
		}
		sensitive.Add("a token", tok)
		if tok != appTok {
			appTok, appChanged = tok, now
		}
		ss := readSession(t, ns, "s-session")
		if ss.SessionToken != session {
			t.Fatalf("the session changed with an app rotation")
		}
		if !appChanged.IsZero() {
			if ss.AccessToken == appTok {
				seen++
				t.Logf("rotation %d: the session Secret carries the app's new token %v after the app's Secret was seen changing (polled every 20ms)",
					seen, now.Sub(appChanged).Round(time.Millisecond))
				if !ss.AccessTokenExpiresAt.Equal(exp) {
					t.Errorf("rotation %d: access_token_expires_at %v, want the app's %v", seen, ss.AccessTokenExpiresAt, exp)
				}
				appChanged = time.Time{}
			} else if lag := now.Sub(appChanged); lag > m2mFollowWithin {
				t.Fatalf("rotation %d: the session Secret still lacks the app's new token %v after the app's Secret changed; status: %s",
					seen+1, lag.Round(10*time.Millisecond), describeSession(getSession(t, ns, "s")))
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := calls(t, sim, harness.RouteM2MLogin, 0); n != 1 {
		t.Errorf("%d logins over %d app rotations, want 1: %v", n, rotations, stats(t, sim))
	}
	waitSessionCondition(t, ns, "s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 2*time.Second)
	if err := sessionAccepted(t, sim, readSession(t, ns, "s-session")); err != nil {
		t.Errorf("the simulator does not accept the session with the Secret's Bearer: %v", err)
	}
}

// TestM2MPasswordRotationSurvivesRefusedWrites: a password reset whose new password the API server
// refuses to store for a while (a ValidatingAdmissionPolicy denying UPDATEs of the credentials
// Secret) is stored once writes are allowed again: the credentials Secret then holds exactly the
// platform's password, the session still works and the user can log in with it.
func TestM2MPasswordRotationSurvivesRefusedWrites(t *testing.T) {
	t.Parallel()
	const (
		rotateEvery = 8 * time.Second
		// refusal is how long writes stay refused after the reset happened.
		refusal = 3 * time.Second
	)
	user, p0 := "rotate-uws", uwsPassword()
	env := newM2MEnv(t, longLifetime, time.Minute, map[string]string{user: p0})
	ns, sim := env.ns, env.sim
	createUWS(t, ns, "uws", user, p0)

	lift := refuseSecretUpdates(t, ns, "uws")
	// The policy must really refuse an update of that Secret, and only of that one: a dry run goes
	// through admission without writing.
	probe := func(name string) error {
		s := &corev1.Secret{}
		if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
			t.Fatal(err)
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations["e2e.credops.io/probe"] = randHex(6)
		return k8s.Update(t.Context(), s, client.DryRunAll)
	}
	var refused error
	err := harness.WaitFor(t.Context(), 20*time.Second, 100*time.Millisecond, func() (bool, error) {
		refused = probe("uws")
		return refused != nil, nil
	})
	if err != nil {
		t.Fatalf("the admission policy never refused an update of the credentials Secret: %v", err)
	}
	if !apierrors.IsInvalid(refused) && !apierrors.IsForbidden(refused) {
		t.Fatalf("update of the credentials Secret refused with an unexpected error: %v", refused)
	}
	t.Logf("the API server refuses updates of the credentials Secret: %v", refused)
	if err := probe("app-creds"); err != nil {
		t.Fatalf("the admission policy also refuses another Secret's update: %v", err)
	}

	newSession(t, ns, "s", "uws", func(s *v1alpha1.M2MSession) {
		s.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: rotateEvery}}
	})
	created := getSession(t, ns, "s").CreationTimestamp.Time
	waitSessionReady(t, ns, "s")
	session := readSession(t, ns, "s-session")

	// The reset happens upstream while the new password cannot be stored.
	var p1 string
	err = harness.WaitFor(t.Context(), rotateEvery+15*time.Second, 50*time.Millisecond, func() (bool, error) {
		p1 = m2mUser(t, sim, user).Password
		return p1 != p0, nil
	})
	if err != nil {
		t.Fatalf("no password reset: %v; status: %s", err, describeSession(getSession(t, ns, "s")))
	}
	reset := time.Now()
	t.Logf("password reset upstream %v after the session was created (interval %v)", reset.Sub(created).Round(100*time.Millisecond), rotateEvery)
	sawNotStored := false
	for time.Since(reset) < refusal {
		if got := uwsPasswordIn(t, ns, "uws"); got != p0 {
			t.Fatalf("the credentials Secret changed while updates were refused")
		}
		if _, reason := harness.SessionReady(getSession(t, ns, "s")); reason == v1alpha1.ReasonPasswordNotStored {
			sawNotStored = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("updates refused for %v after the reset; Ready=False %s seen meanwhile: %v", refusal, v1alpha1.ReasonPasswordNotStored, sawNotStored)
	if n := calls(t, sim, harness.RouteM2MLogin, 0); n != 1 {
		t.Errorf("%d logins while the new password could not be stored, want 1 (the old password is dead)", n)
	}

	lift()
	lifted := time.Now()
	var stored string
	err = harness.WaitFor(t.Context(), 20*time.Second, 50*time.Millisecond, func() (bool, error) {
		stored = uwsPasswordIn(t, ns, "uws")
		return stored != p0 && stored == m2mUser(t, sim, user).Password, nil
	})
	if err != nil {
		t.Fatalf("the credentials Secret does not hold the platform's password %v after writes were allowed again: %v; status: %s",
			time.Since(lifted).Round(10*time.Millisecond), err, describeSession(getSession(t, ns, "s")))
	}
	t.Logf("the new password was in the credentials Secret %v after writes were allowed again", time.Since(lifted).Round(10*time.Millisecond))
	s := waitSessionCondition(t, ns, "s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 10*time.Second)
	if s.Status.PasswordRotatedAt == nil {
		t.Errorf("status.passwordRotatedAt is not set")
	}

	// One reset for one due rotation: storing the password late must not reset it again. (The next
	// rotation is due rotateEvery after the first.)
	resetDue := created.Add(rotateEvery)
	if quiet := time.Until(resetDue.Add(rotateEvery - time.Second)); quiet > 0 {
		time.Sleep(min(quiet, 2*time.Second))
	}
	if time.Now().Before(resetDue.Add(rotateEvery - 500*time.Millisecond)) {
		if n := calls(t, sim, harness.RouteM2MReset, 0); n != 1 {
			t.Errorf("%d password resets for one due rotation, want 1: %v", n, stats(t, sim))
		}
	}
	if stored != p1 {
		t.Logf("note: the credentials Secret holds a password from a later reset than the one made during the refusal")
	}

	// Exactly the platform's password, a working session, and a login that works with the stored password.
	final := m2mUser(t, sim, user)
	if got := uwsPasswordIn(t, ns, "uws"); got != final.Password {
		t.Errorf("the credentials Secret does not hold the platform's current password")
	}
	if final.Locked || final.ConsecutiveFailures != 0 {
		t.Errorf("simulator user: locked=%v, %d consecutive failures; want neither", final.Locked, final.ConsecutiveFailures)
	}
	now := readSession(t, ns, "s-session")
	if now.SessionToken != session.SessionToken {
		t.Logf("note: the session was replaced during the rotation (%d logins)", calls(t, sim, harness.RouteM2MLogin, 0))
	}
	if err := sessionAccepted(t, sim, now); err != nil {
		t.Errorf("the simulator does not accept the session in the Secret after the rotation: %v", err)
	}
	other, err := sim.M2MLogin(t.Context(), now.AccessToken, user, uwsPasswordIn(t, ns, "uws"))
	if err != nil {
		t.Fatalf("logging in with the stored password: %v", err)
	}
	sensitive.Add("a session token", other)
	if err := sim.M2MLogout(t.Context(), now.AccessToken, other); err != nil {
		t.Errorf("logging the test's own session out: %v", err)
	}
}

// refuseSecretUpdates makes the API server refuse every UPDATE of the Secret ns/name with a
// ValidatingAdmissionPolicy whose only validation is `false`, narrowed to that one Secret three ways
// (namespace selector, resource name, match condition). The returned function lifts the refusal
// (deleting the binding and the policy); it is also called at cleanup.
func refuseSecretUpdates(t *testing.T, ns, name string) (lift func()) {
	t.Helper()
	policyName := "e2e-refuse-" + ns
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: policyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					ResourceNames: []string{name},
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
						Rule: admissionregistrationv1.Rule{
							APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"},
						},
					},
				}},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "only-this-secret",
				Expression: fmt.Sprintf("request.namespace == %q && request.name == %q", ns, name),
			}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "false",
				Message:    "e2e: updates of this Secret are refused for a while",
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policyName,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	if err := k8s.Create(t.Context(), policy); err != nil {
		t.Fatalf("create ValidatingAdmissionPolicy: %v", err)
	}
	lifted := false
	lift = func() {
		if lifted {
			return
		}
		lifted = true
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, o := range []client.Object{binding, policy} {
			if err := k8s.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete %T %s: %v", o, o.GetName(), err)
			}
		}
	}
	t.Cleanup(lift)
	if err := k8s.Create(t.Context(), binding); err != nil {
		t.Fatalf("create ValidatingAdmissionPolicyBinding: %v", err)
	}
	return lift
}

// TestM2MLogoutOnDelete: deleting an M2MSession logs its session out once (the finalizer holds the
// object until then); with logoutOnDelete false there is no finalizer and no logout.
func TestM2MLogoutOnDelete(t *testing.T) {
	t.Parallel()
	user, pw := "logout-uws", uwsPassword()
	env := newM2MEnv(t, longLifetime, m2mIdle, map[string]string{user: pw})
	ns, sim := env.ns, env.sim
	createUWS(t, ns, "uws", user, pw)
	newSession(t, ns, "s", "uws")
	newSession(t, ns, "keep", "uws", func(s *v1alpha1.M2MSession) { s.Spec.LogoutOnDelete = ptr.To(false) })
	s := waitSession(t, ns, "s", 30*time.Second, "the finalizer and Ready", func(s *v1alpha1.M2MSession) bool {
		ready, _ := harness.SessionReady(s)
		return ready && controllerutil.ContainsFinalizer(s, v1alpha1.LogoutFinalizer)
	})
	keep := waitSessionReady(t, ns, "keep")
	if len(keep.Finalizers) != 0 {
		t.Errorf("finalizers with logoutOnDelete false = %v, want none", keep.Finalizers)
	}
	ended := readSession(t, ns, "s-session")
	kept := readSession(t, ns, "keep-session")
	if n := activeSessions(t, sim); n != 2 {
		t.Fatalf("%d live sessions upstream, want 2", n)
	}
	if n := calls(t, sim, harness.RouteM2MLogout, 0); n != 0 {
		t.Fatalf("logouts before deletion = %d, want 0", n)
	}

	for _, obj := range []*v1alpha1.M2MSession{s, keep} {
		if err := k8s.Delete(t.Context(), obj); err != nil {
			t.Fatalf("delete %s: %v", obj.Name, err)
		}
	}
	deleted := time.Now()
	for _, name := range []string{"s", "keep"} {
		err := harness.WaitFor(t.Context(), 20*time.Second, 50*time.Millisecond, func() (bool, error) {
			err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, &v1alpha1.M2MSession{})
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		})
		if err != nil {
			o := &v1alpha1.M2MSession{}
			_ = k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, o)
			t.Fatalf("%s was not deleted: %v; finalizers %v, status %s", name, err, o.Finalizers, describeSession(o))
		}
	}
	t.Logf("both sessions gone %v after deletion", time.Since(deleted).Round(10*time.Millisecond))
	if n, ok := calls(t, sim, harness.RouteM2MLogout, 0), calls(t, sim, harness.RouteM2MLogout, 200); n != 1 || ok != 1 {
		t.Errorf("logouts = %v, want exactly one, answered 200", stats(t, sim))
	}
	if n := activeSessions(t, sim); n != 1 {
		t.Errorf("%d live sessions upstream after the deletions, want 1 (the one not logged out)", n)
	}
	var m2mErr *harness.M2MError
	if err := sessionAccepted(t, sim, ended); !errors.As(err, &m2mErr) || !strings.Contains(m2mErr.Code, ".SessionToken.") {
		t.Errorf("the deleted session's token is still usable upstream (or failed oddly: %v): it was not logged out", err)
	}
	if err := sessionAccepted(t, sim, kept); err != nil {
		t.Errorf("the session deleted without logout no longer works: %v", err)
	}
}
