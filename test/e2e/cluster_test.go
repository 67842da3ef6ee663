package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// clusterNamespace is the suite manager's --cluster-resource-namespace.
const clusterNamespace = "e2e-platform"

// tenantLabel admits a namespace by the cluster objects' selector.
var tenantLabel = map[string]string{"e2e.credops.io/uws": "shared"}

// clusterEnv is one test's simulator, a ClusterThingSpaceApp and a ClusterM2MSession of one UWS user
// (credentials in clusterNamespace), and three tenant namespaces: allowed by name, allowed by label,
// not allowed. Each tenant holds a ThingSpaceApp "app" consuming the cluster app and an M2MSession "s"
// consuming the cluster session.
type clusterEnv struct {
	sim                  *harness.Sim
	app                  *v1alpha1.ClusterThingSpaceApp
	session              *v1alpha1.ClusterM2MSession
	byName, byLabel, not string
	user                 string
}

func newClusterEnv(t *testing.T, tokenLifetime string, user, password string, mutate func(*v1alpha1.ClusterM2MSession)) *clusterEnv {
	t.Helper()
	key, secret := "cl-"+randHex(8), "cl-app-"+randHex(12)
	sensitive.AddCredentials(key, secret)
	sensitive.AddUWSCredentials(user, password)
	usersFile := filepath.Join(workDir, "m2m-users-"+fileBase(t)+".txt")
	if err := os.WriteFile(usersFile, []byte(user+":"+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sim := startSim(t, harness.SimConfig{Args: []string{"--app", key + ":" + secret, "--token-lifetime", tokenLifetime,
		"--m2m-users-file", usersFile, "--m2m-idle-timeout", m2mIdle.String()}})
	e := &clusterEnv{sim: sim, user: user}
	e.byName, e.not = newNamespace(t), newNamespace(t)
	e.byLabel = newNamespace(t)
	relabelNamespace(t, e.byLabel, tenantLabel)
	allowed := &v1alpha1.AllowedNamespaces{Names: []string{e.byName}, Selector: &metav1.LabelSelector{MatchLabels: tenantLabel}}

	name := "e2e-" + strings.TrimPrefix(e.byName, "e2e-")
	createCredentials(t, clusterNamespace, name+"-app", key, secret)
	createUWS(t, clusterNamespace, name+"-uws", user, password)
	e.app = &v1alpha1.ClusterThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ClusterThingSpaceAppSpec{
		ThingSpaceAppSpec: harness.NewApp("", name, sim.URL, name+"-app", name+"-token").Spec, AllowedNamespaces: allowed}}
	e.session = &v1alpha1.ClusterM2MSession{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ClusterM2MSessionSpec{
		M2MSessionSpec:    harness.NewM2MSession("", name, name, name+"-uws", name+"-session", m2mInterval, m2mAccount).Spec,
		AllowedNamespaces: allowed}}
	if mutate != nil {
		mutate(e.session)
	}
	for _, o := range []client.Object{e.app, e.session} {
		if err := k8s.Create(t.Context(), o); err != nil {
			t.Fatalf("create %T %s: %v", o, name, err)
		}
	}
	// Runs before the tenants' cleanups and the simulator's stop: the session logs out on deletion.
	t.Cleanup(func() { cleanupCluster(t, e, name) })
	for _, ns := range []string{e.byName, e.byLabel, e.not} {
		t.Cleanup(func() { cleanupSessions(t, ns) })
		createApp(t, &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
			Spec: v1alpha1.ThingSpaceAppSpec{ClusterAppRef: &v1alpha1.ClusterObjectReference{Name: name}, SecretName: "app-token"}})
		if err := k8s.Create(t.Context(), &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s"},
			Spec: v1alpha1.M2MSessionSpec{ClusterSessionRef: &v1alpha1.ClusterObjectReference{Name: name}, SecretName: "s-session"}}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// cleanupCluster records the cluster objects' statuses for the leak check and deletes them and their
// credentials, waiting (briefly) for the session's logout.
func cleanupCluster(t *testing.T, e *clusterEnv, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, o := range []client.Object{&v1alpha1.ClusterM2MSession{}, &v1alpha1.ClusterThingSpaceApp{}} {
		if err := k8s.Get(ctx, types.NamespacedName{Name: name}, o); err != nil {
			continue
		}
		switch c := o.(type) {
		case *v1alpha1.ClusterM2MSession:
			collectStatus(c.Status)
		case *v1alpha1.ClusterThingSpaceApp:
			collectStatus(c.Status)
		}
		_ = k8s.Delete(ctx, o)
		_ = harness.WaitFor(ctx, 10*time.Second, 50*time.Millisecond, func() (bool, error) {
			err := k8s.Get(ctx, types.NamespacedName{Name: name}, o)
			return client.IgnoreNotFound(err) == nil && err != nil, nil
		})
	}
	for _, s := range []string{name + "-app", name + "-uws"} {
		_ = k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: clusterNamespace, Name: s}})
	}
}

func relabelNamespace(t *testing.T, ns string, labels map[string]string) {
	t.Helper()
	o := &corev1.Namespace{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Name: ns}, o); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(o.DeepCopy())
	o.Labels = labels
	if err := k8s.Patch(t.Context(), o, patch); err != nil {
		t.Fatal(err)
	}
}

func getClusterSession(t *testing.T, name string) *v1alpha1.ClusterM2MSession {
	t.Helper()
	c := &v1alpha1.ClusterM2MSession{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Name: name}, c); err != nil {
		t.Fatalf("get ClusterM2MSession %s: %v", name, err)
	}
	return c
}

// waitClusterReady waits until both cluster objects are Ready and count their consumers as want.
func (e *clusterEnv) waitClusterReady(t *testing.T, want v1alpha1.ConsumerStatus) {
	t.Helper()
	var cs *v1alpha1.ClusterM2MSession
	ca := &v1alpha1.ClusterThingSpaceApp{}
	err := harness.WaitFor(t.Context(), 30*time.Second, 50*time.Millisecond, func() (bool, error) {
		cs = getClusterSession(t, e.session.Name)
		if err := k8s.Get(t.Context(), types.NamespacedName{Name: e.app.Name}, ca); err != nil {
			return false, err
		}
		return meta.IsStatusConditionTrue(cs.Status.Conditions, v1alpha1.ConditionReady) && cs.Status.ConsumerStatus == want &&
			meta.IsStatusConditionTrue(ca.Status.Conditions, v1alpha1.ConditionReady) && ca.Status.ConsumerStatus == want, nil
	})
	if err != nil {
		t.Fatalf("cluster objects not Ready with counts %+v: session %+v %+v; app %+v %+v", want,
			cs.Status.Conditions, cs.Status.ConsumerStatus, ca.Status.Conditions, ca.Status.ConsumerStatus)
	}
}

// sessionSecret reads a session Secret (a consumer's or the cluster session's) for the leak check too.
func sessionSecret(t *testing.T, ns, name string) harness.SessionSecret {
	t.Helper()
	ss, err := harness.ReadSession(t.Context(), k8s, ns, name)
	if err != nil {
		t.Fatalf("session Secret %s/%s: %v", ns, name, err)
	}
	sensitive.Add("a session token", ss.SessionToken)
	sensitive.Add("a token", ss.AccessToken)
	return ss
}

// sameSession says whether a consumer's copy holds exactly the cluster session Secret's values.
func sameSession(a, b harness.SessionSecret) bool {
	return a.SessionToken == b.SessionToken && a.AccessToken == b.AccessToken && a.AccessTokenExpiresAt.Equal(b.AccessTokenExpiresAt)
}

// checkTenants checks the consumers of the allowed namespaces hold the cluster session (and app
// token) and are Ready, and the namespace not allowed holds nothing and says NotAllowed.
func (e *clusterEnv) checkTenants(t *testing.T, within time.Duration) {
	t.Helper()
	for _, ns := range []string{e.byName, e.byLabel} {
		err := harness.WaitFor(t.Context(), within, 50*time.Millisecond, func() (bool, error) {
			src, err := harness.ReadSession(t.Context(), k8s, clusterNamespace, e.session.Spec.SecretName)
			if err != nil {
				return false, nil
			}
			cp, err := harness.ReadSession(t.Context(), k8s, ns, "s-session")
			ok, _ := harness.SessionReady(getSession(t, ns, "s"))
			return err == nil && ok && sameSession(src, cp), nil
		})
		if err != nil {
			t.Fatalf("%s: the consumer M2MSession is not Ready with the cluster session's copy: %s", ns, describeSession(getSession(t, ns, "s")))
		}
		waitReady(t, ns, "app")
	}
	waitSessionCondition(t, e.not, "s", metav1.ConditionFalse, v1alpha1.ReasonNotAllowed, within)
	waitCondition(t, e.not, "app", metav1.ConditionFalse, v1alpha1.ReasonNotAllowed, within)
	for _, name := range []string{"s-session", "app-token"} {
		if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: e.not, Name: name}, &corev1.Secret{}); err == nil {
			t.Errorf("the namespace not allowed holds Secret %s", name)
		}
	}
}

// TestClusterCredentialsServeTenantsWithOneLogin (issue 9 §1): a ClusterThingSpaceApp and a
// ClusterM2MSession consumed from three namespaces, one not allowed: exactly one token request per
// token lifetime and one login in total, however many consumers; the copies follow the app's
// rotations, and the simulator accepts a tenant's copy.
func TestClusterCredentialsServeTenantsWithOneLogin(t *testing.T) {
	t.Parallel()
	const lifetimes = 3
	e := newClusterEnv(t, lifetime.String(), "cluster-uws", uwsPassword(), nil)
	e.waitClusterReady(t, v1alpha1.ConsumerStatus{Consumers: 2, RefusedConsumers: 1})
	e.checkTenants(t, 20*time.Second)

	// Several token lifetimes: every distinct token the cluster app holds took one request, and every
	// copy follows it.
	tokens := map[string]bool{}
	for end := time.Now().Add(lifetimes * lifetime); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if tok, _, err := harness.ReadToken(t.Context(), k8s, clusterNamespace, e.app.Spec.SecretName); err == nil {
			sensitive.Add("a token", tok)
			tokens[tok] = true
		}
	}
	e.checkTenants(t, m2mFollowWithin+time.Second)
	if n := calls(t, e.sim, harness.RouteToken, 0); n != len(tokens) {
		t.Errorf("%d token requests for %d tokens over %d lifetimes: want one request per token, whatever the consumers", n, len(tokens), lifetimes)
	}
	t.Logf("%d tokens over %v, %d token requests, for 2 consumer ThingSpaceApps", len(tokens), lifetimes*lifetime, calls(t, e.sim, harness.RouteToken, 0))
	if n := calls(t, e.sim, harness.RouteM2MLogin, 0); n != 1 {
		t.Errorf("%d logins, want 1 for every consumer: %v", n, stats(t, e.sim))
	}
	if err := sessionAccepted(t, e.sim, sessionSecret(t, e.byLabel, "s-session")); err != nil {
		t.Errorf("the simulator refuses a tenant's copy of the session: %v", err)
	}
	// Consumers have no session of their own: nothing logs out but the cluster session.
	if n := calls(t, e.sim, harness.RouteM2MLogout, 0); n != 0 {
		t.Errorf("%d logouts while every object lives", n)
	}
}

// TestClusterSessionPasswordRotation (issue 9 §1): the ClusterM2MSession resets its password on
// schedule into its one credentials Secret; every consumer stays Ready throughout, with zero failed
// logins, and the next login (asked for) uses the new password and reaches every copy.
func TestClusterSessionPasswordRotation(t *testing.T) {
	t.Parallel()
	const rotateEvery = 6 * time.Second
	user, p0 := "cluster-rotate-uws", uwsPassword()
	e := newClusterEnv(t, longLifetime, user, p0, func(s *v1alpha1.ClusterM2MSession) {
		s.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: rotateEvery}}
	})
	e.waitClusterReady(t, v1alpha1.ConsumerStatus{Consumers: 2, RefusedConsumers: 1})
	e.checkTenants(t, 20*time.Second)
	before := sessionSecret(t, e.byName, "s-session")

	// Until the reset has happened and its password is stored, every consumer is Ready at every look.
	creds := e.session.Spec.CredentialsSecretRef.Name
	err := harness.WaitFor(t.Context(), rotateEvery+20*time.Second, 100*time.Millisecond, func() (bool, error) {
		for _, ns := range []string{e.byName, e.byLabel} {
			if ok, reason := harness.SessionReady(getSession(t, ns, "s")); !ok {
				return false, fmt.Errorf("consumer in %s not Ready (%s) during the rotation", ns, reason)
			}
		}
		p := m2mUser(t, e.sim, user).Password
		return p != p0 && uwsPasswordIn(t, clusterNamespace, creds) == p, nil
	})
	if err != nil {
		t.Fatalf("rotation: %v; cluster session: %+v", err, getClusterSession(t, e.session.Name).Status.Conditions)
	}
	sensitive.Add("a UWS password", m2mUser(t, e.sim, user).Password)
	e.checkTenants(t, 5*time.Second)
	if after := sessionSecret(t, e.byName, "s-session"); after.SessionToken != before.SessionToken || after.ResourceVersion != before.ResourceVersion {
		t.Errorf("a consumer's copy changed with the password (the session did not)")
	}

	// The next login uses the stored password.
	cs := getClusterSession(t, e.session.Name)
	patch := client.MergeFrom(cs.DeepCopy())
	cs.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "after-rotation"}
	if err := k8s.Patch(t.Context(), cs, patch); err != nil {
		t.Fatal(err)
	}
	err = harness.WaitFor(t.Context(), 20*time.Second, 50*time.Millisecond, func() (bool, error) {
		cp, err := harness.ReadSession(t.Context(), k8s, e.byLabel, "s-session")
		return err == nil && cp.SessionToken != before.SessionToken, nil
	})
	if err != nil {
		t.Fatalf("the new login never reached a consumer: %v", err)
	}
	e.checkTenants(t, 5*time.Second)
	info := m2mUser(t, e.sim, user)
	st := stats(t, e.sim)
	logins, ok := st[harness.RouteM2MLogin], calls(t, e.sim, harness.RouteM2MLogin, 200)
	if info.ConsecutiveFailures != 0 || info.Locked || ok != calls(t, e.sim, harness.RouteM2MLogin, 0) || ok < 2 {
		t.Errorf("logins %v (%d successful), consecutive failures %d: want every login successful", logins, ok, info.ConsecutiveFailures)
	}
	t.Logf("resets %d, logins by status %v", calls(t, e.sim, harness.RouteM2MReset, 0), logins)
}
