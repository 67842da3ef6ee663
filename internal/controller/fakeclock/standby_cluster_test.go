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

// A ClusterThingSpaceApp with a standby key set (its Secrets in the cluster resource namespace, here
// the fixture's) hands over like a ThingSpaceApp, and its consumer copies the new token at once, with
// Ready steady.
func TestClusterAppStandbyHandoverReachesItsConsumer(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.appCreds()
	f.standbyKey()
	c := &v1alpha1.ClusterThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: f.ns}, Spec: v1alpha1.ClusterThingSpaceAppSpec{
		ThingSpaceAppSpec: v1alpha1.ThingSpaceAppSpec{Endpoint: f.url, SecretName: "platform-token",
			CredentialsSecretRef:        &v1alpha1.LocalSecretReference{Name: "creds"},
			StandbyCredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "standby"}},
		AllowedNamespaces: &v1alpha1.AllowedNamespaces{Names: []string{f.ns}}}}
	must(t, k8s.Create(context.Background(), c))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), c) })
	f.create(&v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: "c1"}, Spec: v1alpha1.ThingSpaceAppSpec{
		ClusterAppRef: &v1alpha1.ClusterObjectReference{Name: c.Name}, SecretName: "c1-token"}})
	token := func(secret string) string { return string(f.secretData(secret)[v1alpha1.SecretKeyAccessToken]) }
	cluster := func() *v1alpha1.ClusterThingSpaceApp {
		got := &v1alpha1.ClusterThingSpaceApp{}
		must(t, k8s.Get(context.Background(), client.ObjectKey{Name: c.Name}, got))
		return got
	}
	var first string
	f.eventually("the consumer Ready with the cluster app's Primary token", 20*time.Second, func() bool {
		first = token("platform-token")
		cons := f.tsApp("c1")
		return first != "" && token("c1-token") == first && meta.IsStatusConditionTrue(cons.Status.Conditions, v1alpha1.ConditionReady) &&
			cluster().Status.ActiveKeySet == v1alpha1.KeySetPrimary && cluster().Status.NextHandoverTime != nil
	})
	f.settle(300 * time.Millisecond)
	readySince := meta.FindStatusCondition(f.tsApp("c1").Status.Conditions, v1alpha1.ConditionReady).LastTransitionTime
	st := cluster().Status
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionOverlap); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("cluster app Overlap %+v", c)
	}

	f.stepTo(st.NextHandoverTime.Time)
	var handed string
	f.eventually("the consumer holding the Standby token, without another clock step", 20*time.Second, func() bool {
		handed = token("platform-token")
		return handed != first && cluster().Status.ActiveKeySet == v1alpha1.KeySetStandby && token("c1-token") == handed
	})
	f.settle(300 * time.Millisecond)
	if !f.sim.ValidBearer(first) {
		t.Fatal("the replaced token is dead")
	}
	if got := meta.FindStatusCondition(f.tsApp("c1").Status.Conditions, v1alpha1.ConditionReady); !got.LastTransitionTime.Equal(&readySince) || got.Status != metav1.ConditionTrue {
		t.Fatalf("consumer Ready %+v changed across the handover (was True since %v)", got, readySince)
	}
	if n := f.sim.Stats().Total(tokenCalls); n != 2 {
		t.Fatalf("%d token calls, want 2", n)
	}
	if n := f.sim.Stats().Total(revokeCalls); n != 0 {
		t.Fatalf("%d revokes, want 0", n)
	}
}
