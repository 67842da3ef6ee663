package controller

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

const (
	uwsUser     = "fleet-uws"
	uwsPassword = "Str0ng!Passw0rd"
	loginRoute  = "POST /api/m2m/v1/session/login"
	accountPath = "GET /api/m2m/v1/accounts/{accountName}"
)

// m2mFixture adds a ready ThingSpaceApp (token lifetime of an hour unless set) and a UWS user.
func m2mFixture(t *testing.T, appLifetime time.Duration) *fixture {
	f := newFixtureWith(t, appLifetime)
	f.sim.SetM2MUser(uwsUser, uwsPassword)
	f.credentials("app-creds", f.key, f.secret)
	f.app("app", "app-creds")
	f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	return f
}

func (f *fixture) uws(name, user, password string) {
	f.t.Helper()
	must(f.t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Data: map[string][]byte{"username": []byte(user), "password": []byte(password)}}))
}

func (f *fixture) session(name, creds string, mutate ...func(*v1alpha1.M2MSession)) *v1alpha1.M2MSession {
	f.t.Helper()
	s := &v1alpha1.M2MSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: v1alpha1.M2MSessionSpec{
			AppRef:               &v1alpha1.LocalObjectReference{Name: "app"},
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: creds},
			SecretName:           name + "-session",
			KeepAlive:            v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: time.Second}, AccountName: "0000123456-00001"},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	must(f.t, k8s.Create(ctx, s))
	return s
}

func (f *fixture) waitSession(name string, status metav1.ConditionStatus, reason string, within time.Duration) *v1alpha1.M2MSession {
	f.t.Helper()
	deadline := time.Now().Add(within)
	var last *metav1.Condition
	for time.Now().Before(deadline) {
		s := &v1alpha1.M2MSession{}
		must(f.t, k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: name}, s))
		for i := range s.Status.Conditions {
			if c := s.Status.Conditions[i]; c.Type == v1alpha1.ConditionReady {
				last = &c
				if c.Status == status && c.Reason == reason {
					return s
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.t.Fatalf("%s/%s: Ready never became %s/%s; last: %+v", f.ns, name, status, reason, last)
	return nil
}

func (f *fixture) sessionData(name string) map[string][]byte {
	s := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: name + "-session"}, s); err != nil {
		return nil
	}
	return s.Data
}

func (f *fixture) logins() int { return f.sim.Stats().Total(loginRoute) }

func TestSessionStaysAliveWithoutExtraLogins(t *testing.T) {
	f := m2mFixture(t, time.Hour)
	f.uws("uws", uwsUser, uwsPassword)
	f.session("s", "uws")
	s := f.waitSession("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 10*time.Second)
	d := f.sessionData("s")
	appTok, _, _ := f.token("app-token")
	if len(d[KeySessionToken]) == 0 || string(d[KeyAccessToken]) != appTok || len(d[KeyAccessTokenExpiresAt]) == 0 {
		t.Fatalf("session Secret keys: %v", keys(d))
	}
	if s.Status.LastLoginTime == nil || s.Status.NextKeepAliveTime == nil || len(s.Finalizers) != 1 {
		t.Fatalf("status/finalizers: %+v %v", s.Status, s.Finalizers)
	}
	// Three idle timeouts pass; the keep-alive holds the one session.
	time.Sleep(3*m2mIdle + time.Second)
	if n := f.logins(); n != 1 {
		t.Fatalf("logins = %d, want 1", n)
	}
	if ka := f.sim.Stats().Count(accountPath, 200); ka < 5 {
		t.Fatalf("keep-alives = %d, want several", ka)
	}
	if f.sim.ActiveM2MSessions() != 1 || string(f.sessionData("s")[KeySessionToken]) != string(d[KeySessionToken]) {
		t.Fatal("the session changed or died")
	}
	// An expiry the platform reports is healed at the next keep-alive, within 2 s.
	f.sim.ExpireM2MSessions()
	deadline := time.Now().Add(2500 * time.Millisecond)
	for string(f.sessionData("s")[KeySessionToken]) == string(d[KeySessionToken]) {
		if time.Now().After(deadline) {
			t.Fatal("expired session not replaced within 2s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := f.logins(); n != 2 {
		t.Fatalf("logins after one expiry = %d, want 2", n)
	}
	// Deleting logs out.
	must(t, k8s.Delete(ctx, s))
	deadline = time.Now().Add(5 * time.Second)
	for f.sim.ActiveM2MSessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("session not logged out on delete")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWithoutAccountNameLogsInAgainBeforeIdleTimeout(t *testing.T) {
	f := m2mFixture(t, time.Hour)
	f.uws("uws", uwsUser, uwsPassword)
	f.session("s", "uws", func(s *v1alpha1.M2MSession) { s.Spec.KeepAlive.AccountName = "" })
	f.waitSession("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 10*time.Second)
	time.Sleep(2500 * time.Millisecond)
	if n := f.logins(); n < 2 || n > 4 {
		t.Fatalf("logins over 2.5 intervals = %d, want 2..4", n)
	}
	if ka := f.sim.Stats().Total(accountPath); ka != 0 {
		t.Fatalf("keep-alive calls without an account = %d", ka)
	}
}

func TestWrongPasswordNeverLocksAndCorrectedSecretRecovers(t *testing.T) {
	f := m2mFixture(t, time.Hour)
	f.uws("uws", uwsUser, "Wr0ng!Passw0rd")
	f.uws("uws2", uwsUser, "Wr0ng!Passw0rd")
	f.session("s", "uws")
	f.session("s2", "uws2") // a second session of the same username, same wrong password
	s := f.waitSession("s", metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, 10*time.Second)
	f.waitSession("s2", metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, 10*time.Second)
	time.Sleep(2 * time.Second)
	info, _ := f.sim.M2MUser(uwsUser)
	if n := f.logins(); n < 1 || n > 2 || info.Locked || info.ConsecutiveFailures > 2 {
		t.Fatalf("logins=%d failures=%d locked=%v; want at most 2 and never locked", n, info.ConsecutiveFailures, info.Locked)
	}
	if s.Status.ConsecutiveLoginFailures < 1 || s.Status.RejectedCredentialsVersion == "" {
		t.Fatalf("status: %+v", s.Status)
	}
	sec := &corev1.Secret{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "uws"}, sec))
	sec.Data["password"] = []byte(uwsPassword)
	must(t, k8s.Update(ctx, sec))
	s = f.waitSession("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 10*time.Second)
	if s.Status.ConsecutiveLoginFailures != 0 {
		t.Fatalf("failures not reset: %d", s.Status.ConsecutiveLoginFailures)
	}
}

func TestInvalidCredentialsAreNeverSent(t *testing.T) {
	f := m2mFixture(t, time.Hour)
	f.uws("uws", uwsUser, "sh0rt")
	f.uws("weak", uwsUser, "lowercaseonly1")
	f.session("s", "uws")
	s := f.waitSession("s", metav1.ConditionFalse, v1alpha1.ReasonInvalidCredentials, 10*time.Second)
	if strings.Contains(s.Status.Conditions[0].Message, "sh0rt") {
		t.Fatal("the condition quotes the password")
	}
	time.Sleep(500 * time.Millisecond)
	if n := f.logins(); n != 0 {
		t.Fatalf("logins with an invalid password = %d", n)
	}
	// A password missing a character class is only a warning: the login is tried.
	f.session("w", "weak")
	f.waitSession("w", metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, 10*time.Second)
	evs := &corev1.EventList{}
	must(t, k8s.List(ctx, evs, client.InNamespace(f.ns)))
	found := false
	for _, e := range evs.Items {
		found = found || e.Reason == "WeakPassword"
	}
	if !found {
		t.Fatal("no WeakPassword warning event")
	}
}

func TestAppTokenRotationReachesTheSessionSecret(t *testing.T) {
	f := m2mFixture(t, lifetime)
	f.uws("uws", uwsUser, uwsPassword)
	f.session("s", "uws")
	f.waitSession("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 10*time.Second)
	first, exp, _ := f.token("app-token")
	deadline := exp.Add(2 * time.Second)
	for {
		d := f.sessionData("s")
		if tok := string(d[KeyAccessToken]); tok != first && tok != "" {
			appTok, _, _ := f.token("app-token")
			if tok != appTok {
				t.Fatalf("session Secret holds %q…, app %q…", tok[:4], appTok[:4])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rotated app token did not reach the session Secret within 2s of expiry")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := f.logins(); n != 1 {
		t.Fatalf("an app rotation cost logins: %d", n)
	}
}

func TestStaleBearerIsReplacedWithoutALogin(t *testing.T) {
	f := m2mFixture(t, time.Hour)
	f.uws("uws", uwsUser, uwsPassword)
	f.session("s", "uws")
	f.waitSession("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 10*time.Second)
	tok, _, _ := f.token("app-token")
	// Someone revokes the app token outside the operator: the next keep-alive meets a gateway 401.
	f.sim.SetApp(f.key, f.secret+"x") // ends the token…
	f.sim.SetApp(f.key, f.secret)     // …and restores the credentials
	deadline := time.Now().Add(6 * time.Second)
	for {
		now, _, _ := f.token("app-token")
		if now != tok && f.sim.ValidBearer(string(f.sessionData("s")[KeyAccessToken])) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stale app token not replaced")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := f.logins(); n != 1 {
		t.Fatalf("a stale Bearer burned logins: %d", n)
	}
}

func TestPasswordRotationStoresTheNewPasswordFirst(t *testing.T) {
	f := m2mFixture(t, time.Hour)
	f.uws("uws", uwsUser, uwsPassword)
	f.session("s", "uws", func(s *v1alpha1.M2MSession) {
		s.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: 2 * time.Second}}
	})
	f.waitSession("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 10*time.Second)
	deadline := time.Now().Add(8 * time.Second)
	for {
		sec := &corev1.Secret{}
		must(t, k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "uws"}, sec))
		info, _ := f.sim.M2MUser(uwsUser)
		if info.Password != uwsPassword && string(sec.Data["password"]) == info.Password {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("password not rotated into the credentials Secret")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rotated := &v1alpha1.M2MSession{}
	deadline = time.Now().Add(3 * time.Second)
	for rotated.Status.PasswordRotatedAt == nil {
		if time.Now().After(deadline) {
			t.Fatal("passwordRotatedAt not set")
		}
		time.Sleep(50 * time.Millisecond)
		must(t, k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "s"}, rotated))
	}
	// One reset per interval: the Secret write that stores the password must not trigger another.
	time.Sleep(1500 * time.Millisecond)
	if n := f.sim.Stats().Count("PUT /api/m2m/v1/session/password/actions/reset", 200); n != 1 {
		t.Fatalf("resets within one interval = %d, want 1", n)
	}
	if n := f.logins(); n != 1 {
		t.Fatalf("rotation cost logins: %d (the session keeps working across a reset)", n)
	}
}

func TestM2MSchemaValidation(t *testing.T) {
	f := newFixture(t)
	for i, iv := range []time.Duration{0, 20 * time.Minute, -time.Second} {
		s := &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "bad"},
			Spec: v1alpha1.M2MSessionSpec{AppRef: &v1alpha1.LocalObjectReference{Name: "a"}, CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "c"},
				SecretName: "out", KeepAlive: v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: iv}}}}
		if err := k8s.Create(ctx, s); err == nil {
			t.Errorf("case %d: interval %v accepted", i, iv)
			_ = k8s.Delete(ctx, s)
		}
	}
	good := &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "good"},
		Spec: v1alpha1.M2MSessionSpec{AppRef: &v1alpha1.LocalObjectReference{Name: "a"}, CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "c"}, SecretName: "out"}}
	must(t, k8s.Create(ctx, good))
	if good.Spec.KeepAlive.Interval == nil || good.Spec.KeepAlive.Interval.Duration != 10*time.Minute || good.Spec.LogoutOnDelete == nil || !*good.Spec.LogoutOnDelete {
		t.Fatalf("defaults: %+v", good.Spec)
	}
}
