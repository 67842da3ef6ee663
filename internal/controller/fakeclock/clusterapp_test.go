package fakeclock

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// A ClusterThingSpaceApp's rotation at expiry reaches every consumer with one token request: the
// consumers copy, they never ask. (The fixture's namespace is the cluster resource namespace and the
// consumers' namespace: the manager watches only it.)
func TestClusterAppRotationReachesEveryConsumerWithOneRequest(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.credentials("creds", map[string]string{v1alpha1.CredentialsKeyKey: f.key, v1alpha1.CredentialsKeySecret: f.secret})
	c := &v1alpha1.ClusterThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: f.ns}, Spec: v1alpha1.ClusterThingSpaceAppSpec{
		ThingSpaceAppSpec: v1alpha1.ThingSpaceAppSpec{Endpoint: f.url, SecretName: "platform-token",
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "creds"}},
		AllowedNamespaces: &v1alpha1.AllowedNamespaces{Names: []string{f.ns}}}}
	must(t, k8s.Create(context.Background(), c))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), c) })
	consumers := []string{"c1", "c2", "c3"}
	for _, n := range consumers {
		f.create(&v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: n}, Spec: v1alpha1.ThingSpaceAppSpec{
			ClusterAppRef: &v1alpha1.ClusterObjectReference{Name: c.Name}, SecretName: n + "-token"}})
	}
	token := func(secret string) string { return string(f.secretData(secret)[v1alpha1.SecretKeyAccessToken]) }
	everyConsumerHolds := func(what string) string {
		f.t.Helper()
		var tok string
		f.eventually(what, 20*time.Second, func() bool {
			tok = token("platform-token")
			for _, n := range consumers {
				app := &v1alpha1.ThingSpaceApp{}
				f.get(n, app)
				if tok == "" || token(n+"-token") != tok || !meta.IsStatusConditionTrue(app.Status.Conditions, v1alpha1.ConditionReady) {
					return false
				}
			}
			return true
		})
		return tok
	}
	first := everyConsumerHolds("every consumer Ready with the cluster app's token")
	f.eventually("the cluster app counting 3 consumers", 20*time.Second, func() bool {
		got := &v1alpha1.ClusterThingSpaceApp{}
		must(t, k8s.Get(context.Background(), client.ObjectKey{Name: c.Name}, got))
		return got.Status.Consumers == 3 && got.Status.RefusedConsumers == 0
	})
	f.settle(300 * time.Millisecond)
	if n := f.sim.Stats().Total(tokenCalls); n != 1 {
		t.Fatalf("%d token calls for three consumers, want 1", n)
	}

	readySince := func(n string) metav1.Time {
		app := &v1alpha1.ThingSpaceApp{}
		f.get(n, app)
		if r := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady); r != nil {
			return r.LastTransitionTime
		}
		return metav1.Time{}
	}
	before := map[string]metav1.Time{}
	for _, n := range consumers {
		before[n] = readySince(n)
	}

	f.step(time.Hour + time.Second)
	var rotated string
	f.eventually("the rotated token in every consumer", 20*time.Second, func() bool {
		rotated = token("platform-token")
		return rotated != first && rotated != ""
	})
	if got := everyConsumerHolds("every consumer Ready with the rotated token"); got != rotated {
		t.Fatal("the consumers hold another token than the cluster app's")
	}
	f.settle(300 * time.Millisecond)
	// A routine rotation never flips a consumer's Ready (issue 12): its copy expiring a moment before the
	// cluster app's renewal lands is mirrored, not reported as AppNotReady.
	for _, n := range consumers {
		if got := readySince(n); !got.Equal(&metav1.Time{Time: before[n].Time}) {
			t.Errorf("consumer %s: Ready transitioned at %v during the rotation (was %v)", n, got, before[n])
		}
	}
	if n := f.sim.Stats().Total(tokenCalls); n != 2 {
		t.Fatalf("%d token calls after one lifetime with three consumers, want 2", n)
	}
}
