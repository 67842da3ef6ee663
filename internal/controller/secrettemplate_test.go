package controller

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Issue 8 scenario 18: labels or annotations removed from a secretTemplate stayed on the Secret. The
// Secret is written by server-side apply, through the manager's cache: the keys the template no longer
// names go, a label someone else put there stays, and no token is fetched for a template change.
func TestSecretTemplateKeysRemovedFromTheTemplateGo(t *testing.T) {
	f := newFixture(t)
	f.credentials("creds", f.key, f.secret)
	f.app("app", "creds", func(a *v1alpha1.ThingSpaceApp) {
		a.Spec.SecretTemplate = &v1alpha1.SecretTemplate{
			Labels:      map[string]string{"team": "a", "tier": "1"},
			Annotations: map[string]string{"note": "x", "doc": "y"},
		}
	})
	f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	ctx := context.Background()
	key := client.ObjectKey{Namespace: f.ns, Name: "app-token"}
	s := &corev1.Secret{}
	must(t, k8s.Get(ctx, key, s))
	if s.Labels["tier"] != "1" || s.Annotations["doc"] != "y" {
		t.Fatalf("the template was not applied: labels %v, annotations %v", s.Labels, s.Annotations)
	}
	s.Labels["backup"] = "yes"
	must(t, k8s.Update(ctx, s, client.FieldOwner("someone-else")))
	calls := f.tokenCalls()

	a := f.get("app")
	a.Spec.SecretTemplate = &v1alpha1.SecretTemplate{Labels: map[string]string{"team": "b"}, Annotations: map[string]string{"note": "x"}}
	must(t, k8s.Update(ctx, a))
	wantLabels := map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue, "team": "b", "backup": "yes"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		must(t, k8s.Get(ctx, key, s))
		if maps.Equal(s.Labels, wantLabels) && maps.Equal(userAnnotations(s), map[string]string{"note": "x"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the template shrank: labels %v, annotations %v; want labels %v, annotations map[note:x]", s.Labels, userAnnotations(s), wantLabels)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := f.tokenCalls() - calls; n != 0 {
		t.Errorf("a template change made %d token requests, want none", n)
	}
}

// userAnnotations are s's annotations without the operator's bookkeeping ones.
func userAnnotations(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Annotations {
		if !strings.HasPrefix(k, v1alpha1.ReservedPrefix) {
			out[k] = v
		}
	}
	return out
}
