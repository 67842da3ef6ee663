package sharding

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/holders"
	"github.com/credops/thingspace-operator/internal/simulator"
)

const revokeRoute = "POST /api/ts/v1/oauth2/revoke"

// TestSameKeyAcrossShardsIsNotRevoked: shard a's app (renewBefore, revokeOnDelete) and shard b's app
// use one key, so they share the platform's one token. While b holds it, a's renewBefore rotation, a
// refresh request and a's deletion revoke nothing (RevokeSkipped events, a Ready message saying why),
// and b's token stays valid throughout. Once b lets the key go (its app deleted, its registry Lease
// with it), a deletion in a revokes again.
func TestSameKeyAcrossShardsIsNotRevoked(t *testing.T) {
	ctx := t.Context()
	const lifetime, renewBefore = 10 * time.Second, 5 * time.Second
	ops, ns := namespace(t, "samekey-ops"), namespace(t, "samekey")
	sim := simulator.New(simulator.Config{Apps: map[string]string{appKey: appSecret}, TokenLifetime: lifetime})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"},
		Data: map[string][]byte{"key": []byte(appKey), "secret": []byte(appSecret)}}))
	app := func(name string, shard string, mutate func(*v1alpha1.ThingSpaceApp)) {
		a := &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: inShard(shard)},
			Spec: v1alpha1.ThingSpaceAppSpec{Endpoint: srv.URL, SecretName: name + "-token",
				CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "creds"}}}
		if mutate != nil {
			mutate(a)
		}
		must(t, k8s.Create(ctx, a))
	}
	token := func(name string) string {
		s := &corev1.Secret{}
		must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-token"}, s))
		return string(s.Data["access_token"])
	}
	startShard(t, "a", ops, ops)
	startShard(t, "b", ops, ops)

	app("b-app", "b", nil)
	waitReady(t, &v1alpha1.ThingSpaceApp{}, client.ObjectKey{Namespace: ns, Name: "b-app"}, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	app("a-app", "a", func(a *v1alpha1.ThingSpaceApp) {
		a.Spec.RenewBefore = &metav1.Duration{Duration: renewBefore}
		a.Spec.RevokeOnDelete = true
	})
	waitReady(t, &v1alpha1.ThingSpaceApp{}, client.ObjectKey{Namespace: ns, Name: "a-app"}, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	shared := token("b-app")
	if token("a-app") != shared {
		t.Fatal("two shards of one key hold different tokens")
	}

	// a's renewBefore window opens before the token's expiry; its rotation is skipped, and Ready says
	// why until the token is renewed at expiry.
	waitEvent(t, ns, "a-app", "(renewBefore)")
	if n := sim.Stats().Total(revokeRoute); n != 0 || !sim.ValidBearer(shared) {
		t.Fatalf("renewBefore in shard a: %d revokes, b's token valid %v; want none, valid", n, sim.ValidBearer(shared))
	}
	a := &v1alpha1.ThingSpaceApp{}
	waitFor(t, "a-app's Ready message saying why it was not renewed early", func() bool {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "a-app"}, a) == nil &&
			strings.Contains(readyMessage(a), "other manager(s) hold this key's token")
	})
	if n := sim.Stats().Total(revokeRoute); n != 0 {
		t.Fatalf("%d revokes, want none", n)
	}

	// A refresh request is observed, without a revoke.
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "a-app"}, a))
	patch := client.MergeFrom(a.DeepCopy())
	a.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "now-1"}
	must(t, k8s.Patch(ctx, a, patch))
	waitFor(t, "the refresh request observed", func() bool {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "a-app"}, a) == nil && a.Status.ObservedRefreshRequest == "now-1"
	})
	waitEvent(t, ns, "a-app", "(refresh requested)")
	if n := sim.Stats().Total(revokeRoute); n != 0 {
		t.Fatalf("refresh request in shard a: %d revokes, want none", n)
	}

	// Deleting a's app (revokeOnDelete) revokes nothing either: b still holds the token.
	must(t, k8s.Delete(ctx, a))
	waitFor(t, "a-app gone", func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "a-app"}, &v1alpha1.ThingSpaceApp{}))
	})
	waitEvent(t, ns, "a-app", "other manager(s) of this cluster")
	if n := sim.Stats().Total(revokeRoute); n != 0 || !sim.ValidBearer(token("b-app")) {
		t.Fatalf("a-app deleted: %d revokes, b's token valid %v; want none, valid", n, sim.ValidBearer(token("b-app")))
	}

	// b lets the key go: its Lease is deleted at its next renewal, and a deletion in a revokes.
	must(t, k8s.Delete(ctx, &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "b-app"}}))
	app("a-last", "a", func(a *v1alpha1.ThingSpaceApp) { a.Spec.RevokeOnDelete = true })
	waitReady(t, &v1alpha1.ThingSpaceApp{}, client.ObjectKey{Namespace: ns, Name: "a-last"}, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	waitFor(t, "b's registry Lease dropped by its renewer", func() bool {
		list := &coordinationv1.LeaseList{}
		if err := k8s.List(ctx, list, client.InNamespace(ops), client.HasLabels{holders.LabelKey}); err != nil {
			return false
		}
		for _, l := range list.Items {
			if ptr.Deref(l.Spec.HolderIdentity, "") == "shard-b.thingspace-operator.credops.io" {
				return false
			}
		}
		return true
	})
	must(t, k8s.Delete(ctx, &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a-last"}}))
	waitFor(t, "a-last's revoke", func() bool { return sim.Stats().Total(revokeRoute) == 1 })

	// Nothing the managers logged or recorded names the key's secret or the token.
	list := &eventsv1.EventList{}
	must(t, k8s.List(ctx, list, client.InNamespace(ns)))
	var notes strings.Builder
	for _, e := range list.Items {
		notes.WriteString(e.Note + "\n")
	}
	for what, s := range map[string]string{"the app secret": appSecret, "the token": shared} {
		if strings.Contains(logs.String(), s) || strings.Contains(notes.String(), s) {
			t.Errorf("%s is in the managers' log or an event", what)
		}
	}
}

func readyMessage(a *v1alpha1.ThingSpaceApp) string {
	if c := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		return c.Message
	}
	return ""
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\nlog tail: %s", what, tail(logs.String(), 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitEvent waits for a RevokeSkipped event about the ThingSpaceApp name whose note contains want.
func waitEvent(t *testing.T, ns, name, want string) {
	t.Helper()
	waitFor(t, "a RevokeSkipped event on "+name+" with "+want, func() bool {
		list := &eventsv1.EventList{}
		if err := k8s.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.Reason == v1alpha1.EventRevokeSkipped && e.Regarding.Name == name && strings.Contains(e.Note, want) {
				return true
			}
		}
		return false
	})
}
