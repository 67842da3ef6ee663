package sharding

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

const (
	appKey, appSecret = "shard-key", "shard-S3cret-value"
	uwsUser, uwsPass  = "shard-uws-user", "shard-UWS-pass-value"
)

// TestShardsSplitByLabel runs two managers, --watch-label-selector shard=a and shard=b, on one control
// plane. Each object is reconciled by its shard alone: the other never writes it (nor its Secret),
// and an object labelled for neither is left alone. A session labelled for b whose app is a's, and a
// consumer labelled for b of a's ClusterThingSpaceApp, say so (Ready=False, OtherShard), from b.
func TestShardsSplitByLabel(t *testing.T) {
	ctx := t.Context()
	ops, ns := namespace(t, "split-ops"), namespace(t, "split")
	sim := simulator.New(simulator.Config{Apps: map[string]string{appKey: appSecret}, M2MUsers: map[string]string{uwsUser: uwsPass}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	for _, n := range []string{ns, ops} {
		must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: n, Name: "creds"},
			Data: map[string][]byte{"key": []byte(appKey), "secret": []byte(appSecret)}}))
	}
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "uws"},
		Data: map[string][]byte{"username": []byte(uwsUser), "password": []byte(uwsPass)}}))
	app := func(name string, lbl map[string]string) {
		must(t, k8s.Create(ctx, &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbl},
			Spec: v1alpha1.ThingSpaceAppSpec{Endpoint: srv.URL, SecretName: name + "-token",
				CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "creds"}}}))
	}
	session := func(name, appName string, lbl map[string]string) {
		must(t, k8s.Create(ctx, &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbl},
			Spec: v1alpha1.M2MSessionSpec{AppRef: &v1alpha1.LocalObjectReference{Name: appName},
				CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "uws"}, SecretName: name + "-token"}}))
	}
	consumer := func(name string, lbl map[string]string) {
		must(t, k8s.Create(ctx, &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbl},
			Spec: v1alpha1.ThingSpaceAppSpec{SecretName: name + "-token", ClusterAppRef: &v1alpha1.ClusterObjectReference{Name: "a-cluster"}}}))
	}
	app("a-app", inShard("a"))
	app("b-app", inShard("b"))
	app("x-app", nil) // no shard's
	session("a-session", "a-app", inShard("a"))
	session("b-cross", "a-app", inShard("b"))
	cluster := &v1alpha1.ClusterThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: "a-cluster", Labels: inShard("a")},
		Spec: v1alpha1.ClusterThingSpaceAppSpec{ThingSpaceAppSpec: v1alpha1.ThingSpaceAppSpec{Endpoint: srv.URL, SecretName: "a-cluster-token",
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "creds"}},
			AllowedNamespaces: &v1alpha1.AllowedNamespaces{Names: []string{ns}}}}
	must(t, k8s.Create(ctx, cluster))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), cluster) })
	consumer("a-consumer", inShard("a"))
	consumer("b-consumer", inShard("b"))

	a := startShard(t, "a", ops, ops)
	b := startShard(t, "b", ops, ops)

	for _, name := range []string{"a-app", "b-app", "a-consumer"} {
		waitReady(t, &v1alpha1.ThingSpaceApp{}, client.ObjectKey{Namespace: ns, Name: name}, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	}
	waitReady(t, &v1alpha1.ClusterThingSpaceApp{}, client.ObjectKey{Name: "a-cluster"}, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	waitReady(t, &v1alpha1.M2MSession{}, client.ObjectKey{Namespace: ns, Name: "a-session"}, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	c := waitReady(t, &v1alpha1.M2MSession{}, client.ObjectKey{Namespace: ns, Name: "b-cross"}, metav1.ConditionFalse, v1alpha1.ReasonOtherShard)
	t.Logf("b-cross: %s", c.Message)
	c = waitReady(t, &v1alpha1.ThingSpaceApp{}, client.ObjectKey{Namespace: ns, Name: "b-consumer"}, metav1.ConditionFalse, v1alpha1.ReasonOtherShard)
	t.Logf("b-consumer: %s", c.Message)

	// Objects created before the managers started have all been seen; give the other shard a moment.
	time.Sleep(2 * time.Second)
	x := &v1alpha1.ThingSpaceApp{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "x-app"}, x))
	if len(x.Status.Conditions) != 0 || len(x.Finalizers) != 0 {
		t.Errorf("x-app, in no shard, was reconciled: %+v", x.Status)
	}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "x-app-token"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("x-app's Secret: %v, want NotFound", err)
	}
	aObjects := []string{"a-app", "a-app-token", "a-session", "a-session-token", "a-cluster", "a-cluster-token", "a-consumer", "a-consumer-token"}
	bObjects := []string{"b-app", "b-app-token", "b-cross", "b-consumer"}
	xObjects := []string{"x-app", "x-app-token"}
	if w := touching(b.Writes(), append(aObjects, xObjects...)...); len(w) > 0 {
		t.Errorf("shard b wrote objects of shard a or of none: %v", w)
	}
	if w := touching(a.Writes(), append(bObjects, xObjects...)...); len(w) > 0 {
		t.Errorf("shard a wrote objects of shard b or of none: %v", w)
	}
	if len(touching(a.Writes(), "a-app")) == 0 || len(touching(b.Writes(), "b-app")) == 0 {
		t.Fatalf("the write counter saw nothing: a %v, b %v", a.Writes(), b.Writes())
	}
	t.Logf("writes: shard a %d, shard b %d", len(a.Writes()), len(b.Writes()))
}
