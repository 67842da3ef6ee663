package controller

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/memo"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
)

// Outside a cluster without --cluster-resource-namespace a ClusterThingSpaceApp says so (Ready=False,
// CredentialsNotFound), with no finalizer (revokeOnDelete), pass after pass.
func TestClusterAppWithoutClusterNamespace(t *testing.T) {
	scheme := k8s.Scheme() // the suite's: core and thingspace kinds
	c := &v1alpha1.ClusterThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: "platform", UID: "uid-p", Generation: 1},
		Spec: v1alpha1.ClusterThingSpaceAppSpec{ThingSpaceAppSpec: v1alpha1.ThingSpaceAppSpec{SecretName: "t", RevokeOnDelete: true,
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "creds"}}}}
	cl := fake.NewClientBuilder().WithScheme(scheme).WithObjects(c).WithStatusSubresource(c).
		WithIndex(&v1alpha1.ThingSpaceApp{}, indexClusterAppRef, func(client.Object) []string { return nil }).Build()
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	r := &ClusterThingSpaceAppReconciler{Apps: &ThingSpaceAppReconciler{
		Deps:   Deps{Client: cl, APIReader: cl, Scheme: scheme, Recorder: events.NewFakeRecorder(10), Clock: clk},
		Broker: tokenbroker.New(clk, nil)}, statuses: memo.New[v1alpha1.ClusterThingSpaceAppStatus]()}
	for range 2 {
		if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(c)}); err != nil {
			t.Fatal(err)
		}
	}
	got := &v1alpha1.ClusterThingSpaceApp{}
	if err := cl.Get(context.Background(), client.ObjectKeyFromObject(c), got); err != nil {
		t.Fatal(err)
	}
	cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != v1alpha1.ReasonCredentialsNotFound || cond.Message != noClusterNamespace {
		t.Fatalf("Ready %+v", cond)
	}
	if len(got.Finalizers) != 0 {
		t.Fatalf("finalizers %v without a namespace to revoke from", got.Finalizers)
	}
}
