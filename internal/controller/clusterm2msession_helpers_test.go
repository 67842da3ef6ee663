package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// watcher watches objects for the tests that count writes.
var watcher client.WithWatch

// clusterSessionFixture is a ready ClusterThingSpaceApp (allowing every namespace) and the test's UWS
// user on its simulator.
func clusterSessionFixture(t *testing.T) (*fixture, *v1alpha1.ClusterThingSpaceApp) {
	f := newFixtureWith(t, time.Hour)
	f.sim.SetM2MUser(uwsUser, uwsPassword)
	app := f.clusterApp(&v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{}})
	f.waitCluster(app.Name, 10*time.Second, "Ready", clusterReady)
	return f, app
}

// clusterSession makes a ClusterM2MSession (named after the test's namespace) of the test's UWS user
// with the ClusterThingSpaceApp app, allowing what allowed says.
func (f *fixture) clusterSession(app string, allowed *v1alpha1.AllowedNamespaces, mutate ...func(*v1alpha1.ClusterM2MSession)) *v1alpha1.ClusterM2MSession {
	f.t.Helper()
	return f.clusterSessionWith(uwsPassword, app, allowed, mutate...)
}

// clusterSessionWith is clusterSession with the given UWS password in its credentials Secret.
func (f *fixture) clusterSessionWith(password, app string, allowed *v1alpha1.AllowedNamespaces, mutate ...func(*v1alpha1.ClusterM2MSession)) *v1alpha1.ClusterM2MSession {
	f.t.Helper()
	name := f.ns
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: clusterNamespace, Name: name + "-uws"},
		Data: map[string][]byte{"username": []byte(uwsUser), "password": []byte(password)}}
	must(f.t, k8s.Create(ctx, creds))
	cm := &v1alpha1.ClusterM2MSession{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ClusterM2MSessionSpec{AllowedNamespaces: allowed, M2MSessionSpec: v1alpha1.M2MSessionSpec{
			AppRef:               &v1alpha1.LocalObjectReference{Name: app},
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: creds.Name},
			SecretName:           name + "-session",
			KeepAlive:            v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: time.Second}, AccountName: "0000123456-00001"},
		}}}
	for _, m := range mutate {
		m(cm)
	}
	must(f.t, k8s.Create(ctx, cm))
	// Registered after the fixture's: runs before the simulator closes, so the logout reaches it.
	f.t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), cm)
		_ = k8s.Delete(context.Background(), creds)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if apierrors.IsNotFound(k8s.Get(context.Background(), client.ObjectKeyFromObject(cm), &v1alpha1.ClusterM2MSession{})) {
				return
			}
		}
	})
	return cm
}

// sessionConsumer makes an M2MSession in the fixture's namespace consuming the ClusterM2MSession cm.
func (f *fixture) sessionConsumer(name, cm string) *v1alpha1.M2MSession {
	f.t.Helper()
	s := &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: v1alpha1.M2MSessionSpec{ClusterSessionRef: &v1alpha1.ClusterObjectReference{Name: cm}, SecretName: name + "-session",
			SecretTemplate: &v1alpha1.SecretTemplate{Labels: map[string]string{"team.example/app": "fleet"}}}}
	must(f.t, k8s.Create(ctx, s))
	f.t.Cleanup(func() { _ = k8s.Delete(context.Background(), s) })
	return s
}

// waitReadyOf polls obj (by key) until its Ready condition has status and reason.
func waitReadyOf[T client.Object](t *testing.T, key client.ObjectKey, obj T, conds func(T) []metav1.Condition, status metav1.ConditionStatus, reason string) T {
	t.Helper()
	var last *metav1.Condition
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		must(t, k8s.Get(ctx, key, obj))
		if last = meta.FindStatusCondition(conds(obj), v1alpha1.ConditionReady); last != nil && last.Status == status && last.Reason == reason {
			return obj
		}
	}
	t.Fatalf("%s: Ready never became %s/%s; last: %+v", key, status, reason, last)
	return obj
}

func (f *fixture) waitClusterSession(name string, status metav1.ConditionStatus, reason string) *v1alpha1.ClusterM2MSession {
	f.t.Helper()
	return waitReadyOf(f.t, client.ObjectKey{Name: name}, &v1alpha1.ClusterM2MSession{},
		func(c *v1alpha1.ClusterM2MSession) []metav1.Condition { return c.Status.Conditions }, status, reason)
}

func (f *fixture) waitConsumer(name string, status metav1.ConditionStatus, reason string) *v1alpha1.M2MSession {
	f.t.Helper()
	return waitReadyOf(f.t, client.ObjectKey{Namespace: f.ns, Name: name}, &v1alpha1.M2MSession{},
		func(s *v1alpha1.M2MSession) []metav1.Condition { return s.Status.Conditions }, status, reason)
}

// secretIn returns the Secret ns/name, nil when there is none.
func secretIn(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitSessionCounts waits for the ClusterM2MSession's consumer counts.
func (f *fixture) waitSessionCounts(name string, want v1alpha1.ConsumerStatus) {
	f.t.Helper()
	cm := &v1alpha1.ClusterM2MSession{}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if must(f.t, k8s.Get(ctx, client.ObjectKey{Name: name}, cm)); cm.Status.ConsumerStatus == want {
			return
		}
	}
	f.t.Fatalf("%s: counts %+v, want %+v", name, cm.Status.ConsumerStatus, want)
}
