package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
	s.Data[v1alpha1.CredentialsKeyPassword] = []byte(password)
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
	pw := string(s.Data[v1alpha1.CredentialsKeyPassword])
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
	if keys := slices.Sorted(maps.Keys(sec.Data)); !slices.Equal(keys, []string{v1alpha1.SecretKeyAccessToken, v1alpha1.SecretKeyAccessTokenExpiresAt, v1alpha1.SecretKeySessionToken}) {
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
