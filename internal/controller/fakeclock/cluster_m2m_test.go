package fakeclock

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// Issue 9: a ClusterM2MSession's password rotation updates its one credentials Secret and nothing its
// consumers hold: the session survives the reset, so their copies stay as they were and they stay
// Ready; no login fails, then or at the next login, which uses the new password.
func TestClusterSessionPasswordRotationKeepsConsumersWorking(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: 48 * time.Hour})
	f.sim.SetM2MUser(uwsUser, uwsPassword)
	// Cluster-scoped names are global: the test's namespace names them. Its Secrets are in that namespace
	// too (the fixture's --cluster-resource-namespace).
	name := f.ns
	f.credentials("app-creds", map[string]string{v1alpha1.CredentialsKeyKey: f.key, v1alpha1.CredentialsKeySecret: f.secret})
	f.credentials("uws", map[string]string{v1alpha1.CredentialsKeyUsername: uwsUser, v1alpha1.CredentialsKeyPassword: uwsPassword})
	app := &v1alpha1.ClusterThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ClusterThingSpaceAppSpec{ThingSpaceAppSpec: v1alpha1.ThingSpaceAppSpec{Endpoint: f.url, SecretName: "app-token",
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "app-creds"}}}}
	cm := &v1alpha1.ClusterM2MSession{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ClusterM2MSessionSpec{AllowedNamespaces: &v1alpha1.AllowedNamespaces{Names: []string{f.ns}},
			M2MSessionSpec: v1alpha1.M2MSessionSpec{
				AppRef: &v1alpha1.LocalObjectReference{Name: name}, CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "uws"},
				SecretName: "cluster-session", LogoutOnDelete: ptr.To(false),
				KeepAlive:        v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: 10 * time.Minute}, AccountName: "0000123456-00001"},
				PasswordRotation: &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: time.Hour}},
			}}}
	for _, o := range []client.Object{app, cm} {
		must(t, k8s.Create(context.Background(), o))
	}
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), cm)
		_ = k8s.Delete(context.Background(), app)
	})
	consumers := []string{"c1", "c2", "c3"}
	for _, c := range consumers {
		f.create(&v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Name: c},
			Spec: v1alpha1.M2MSessionSpec{ClusterSessionRef: &v1alpha1.ClusterObjectReference{Name: name}, SecretName: c + "-session"}})
	}
	ready := func() {
		t.Helper()
		for _, c := range consumers {
			f.waitCondition(c, &v1alpha1.M2MSession{}, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
		}
	}
	ready()
	f.settle(300 * time.Millisecond)
	session := string(f.secretData("cluster-session")[v1alpha1.SecretKeySessionToken])
	versions := map[string]string{}
	for _, c := range consumers {
		if got := string(f.secretData(c + "-session")[v1alpha1.SecretKeySessionToken]); got != session {
			t.Fatalf("%s holds another session than the cluster session's", c)
		}
		versions[c] = f.secretVersion(c + "-session")
	}

	// An hour and a half: keep-alives every 10 minutes, the reset at the hour.
	f.walk(90*time.Minute, 5*time.Minute)
	st := f.sim.Stats()
	info, _ := f.sim.M2MUser(uwsUser)
	if n := st.Total(resetRoute); n != 1 {
		t.Fatalf("%d password resets, want 1", n)
	}
	if got := string(f.secretData("uws")[v1alpha1.CredentialsKeyPassword]); got == uwsPassword || got != info.Password {
		t.Fatal("the credentials Secret does not hold the platform's new password")
	}
	if n := st.Total(loginRoute); n != 1 || info.ConsecutiveFailures != 0 || st.Count(loginRoute, 200) != 1 {
		t.Fatalf("logins %d (failures %d): want the one login, none failed", n, info.ConsecutiveFailures)
	}
	ready()
	for _, c := range consumers {
		if v := f.secretVersion(c + "-session"); v != versions[c] {
			t.Errorf("%s: its copy was rewritten though the session did not change", c)
		}
	}

	// The next login (a person asks for one) uses the new password, and reaches every consumer.
	latest := &v1alpha1.ClusterM2MSession{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Name: name}, latest))
	patch := client.MergeFrom(latest.DeepCopy())
	latest.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "after-rotation"}
	must(t, k8s.Patch(context.Background(), latest, patch))
	f.eventually("the new login in every copy", 20*time.Second, func() bool {
		fresh := string(f.secretData("cluster-session")[v1alpha1.SecretKeySessionToken])
		for _, c := range consumers {
			if fresh == session || string(f.secretData(c + "-session")[v1alpha1.SecretKeySessionToken]) != fresh {
				return false
			}
		}
		return true
	})
	info, _ = f.sim.M2MUser(uwsUser)
	if st := f.sim.Stats(); st.Total(loginRoute) != 2 || st.Count(loginRoute, 200) != 2 || info.ConsecutiveFailures != 0 {
		t.Fatalf("logins %d, successful %d, failures %d: want 2, 2, 0", st.Total(loginRoute), st.Count(loginRoute, 200), info.ConsecutiveFailures)
	}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Name: name}, latest))
	if c := meta.FindStatusCondition(latest.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue ||
		latest.Status.Consumers != 3 || latest.Status.PasswordRotatedAt == nil {
		t.Fatalf("cluster session status: %+v", latest.Status)
	}
}

// secretVersion is Secret name's resourceVersion ("" when absent).
func (f *fixture) secretVersion(name string) string {
	s := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: name}, s); err != nil {
		return ""
	}
	return s.ResourceVersion
}
