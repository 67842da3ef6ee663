package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// clusterApp creates a ClusterThingSpaceApp named after the test's namespace (cluster-scoped names
// are global), with the fixture's app key in a credentials Secret in the cluster resource namespace.
func (f *fixture) clusterApp(allowed *v1alpha1.AllowedNamespaces, mutate ...func(*v1alpha1.ClusterThingSpaceApp)) *v1alpha1.ClusterThingSpaceApp {
	f.t.Helper()
	name := f.ns
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: clusterNamespace, Name: name + "-creds"},
		Data: map[string][]byte{"key": []byte(f.key), "secret": []byte(f.secret)}}
	must(f.t, k8s.Create(ctx, creds))
	c := &v1alpha1.ClusterThingSpaceApp{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ClusterThingSpaceAppSpec{ThingSpaceAppSpec: v1alpha1.ThingSpaceAppSpec{
			Endpoint: f.url, CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: creds.Name}, SecretName: name + "-token",
		}, AllowedNamespaces: allowed},
	}
	for _, m := range mutate {
		m(c)
	}
	must(f.t, k8s.Create(ctx, c))
	// Runs before the simulator closes (cleanups run last-in first-out).
	f.t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), c)
		_ = k8s.Delete(context.Background(), creds)
	})
	return c
}

func (f *fixture) getCluster(name string) *v1alpha1.ClusterThingSpaceApp {
	f.t.Helper()
	c := &v1alpha1.ClusterThingSpaceApp{}
	must(f.t, k8s.Get(ctx, client.ObjectKey{Name: name}, c))
	return c
}

// waitCluster waits until cond holds for the ClusterThingSpaceApp name.
func (f *fixture) waitCluster(name string, within time.Duration, what string, cond func(*v1alpha1.ClusterThingSpaceApp) bool) *v1alpha1.ClusterThingSpaceApp {
	f.t.Helper()
	var c *v1alpha1.ClusterThingSpaceApp
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c = f.getCluster(name); cond(c) {
			return c
		}
	}
	f.t.Fatalf("ClusterThingSpaceApp %s: never %s; status %+v", name, what, c.Status)
	return nil
}

func clusterReady(c *v1alpha1.ClusterThingSpaceApp) bool {
	return meta.IsStatusConditionTrue(c.Status.Conditions, v1alpha1.ConditionReady)
}

func counts(consumers, refused int32) func(*v1alpha1.ClusterThingSpaceApp) bool {
	return func(c *v1alpha1.ClusterThingSpaceApp) bool {
		return c.Status.Consumers == consumers && c.Status.RefusedConsumers == refused
	}
}

// tenant is a namespace of its own for consumers, a fixture on the same simulator.
func (f *fixture) tenant(suffix string, labels map[string]string) *fixture {
	f.t.Helper()
	base := f.ns
	if len(base) > 50 {
		base = base[:50]
	}
	t := *f
	t.ns = fmt.Sprintf("%s-%s", base, suffix)
	must(f.t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: t.ns, Labels: labels}}))
	f.t.Cleanup(func() { _ = k8s.DeleteAllOf(context.Background(), &v1alpha1.ThingSpaceApp{}, client.InNamespace(t.ns)) })
	return &t
}

// consumer creates a ThingSpaceApp consuming the ClusterThingSpaceApp clusterApp.
func (f *fixture) consumer(name, clusterApp string) *v1alpha1.ThingSpaceApp {
	f.t.Helper()
	a := &v1alpha1.ThingSpaceApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: v1alpha1.ThingSpaceAppSpec{ClusterAppRef: &v1alpha1.ClusterObjectReference{Name: clusterApp}, SecretName: name + "-token",
			SecretTemplate: &v1alpha1.SecretTemplate{Labels: map[string]string{"team": "iot"}}},
	}
	must(f.t, k8s.Create(ctx, a))
	return a
}

// clusterToken is the token in the ClusterThingSpaceApp's Secret.
func clusterToken(c *v1alpha1.ClusterThingSpaceApp) string {
	s := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: clusterNamespace, Name: c.Spec.SecretName}, s); err != nil {
		return ""
	}
	return string(s.Data[KeyAccessToken])
}

// waitTokenIs waits until the app's Secret holds want ("" : until it is gone).
func (f *fixture) waitTokenIs(secretName, want string, within time.Duration) {
	f.t.Helper()
	var got string
	var ok bool
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got, _, ok = f.token(secretName); got == want && (ok || want == "") {
			return
		}
	}
	f.t.Fatalf("%s/%s: token present %v (%d bytes), want %d bytes", f.ns, secretName, ok, len(got), len(want))
}

func (f *fixture) relabel(labels map[string]string) {
	f.t.Helper()
	ns := &corev1.Namespace{}
	must(f.t, k8s.Get(ctx, client.ObjectKey{Name: f.ns}, ns))
	ns.Labels = labels
	must(f.t, k8s.Update(ctx, ns))
}

// eventually polls cond until it holds, failing the test after within.
func (f *fixture) eventually(what string, within time.Duration, cond func() bool) {
	f.t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not within %v", what, within)
		}
	}
}
