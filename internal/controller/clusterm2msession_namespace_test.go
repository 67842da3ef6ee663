package controller

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/memo"
)

// A manager without --cluster-resource-namespace cannot find a ClusterM2MSession's credentials: Ready
// says so (and is written once), nothing is called, and a deleted one is not held by its finalizer.
func TestClusterSessionWithoutClusterNamespace(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	cm := &v1alpha1.ClusterM2MSession{ObjectMeta: metav1.ObjectMeta{Name: "platform", UID: "cm-uid", Generation: 1},
		Spec: v1alpha1.ClusterM2MSessionSpec{M2MSessionSpec: v1alpha1.M2MSessionSpec{AppRef: &v1alpha1.LocalObjectReference{Name: "app"},
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "uws"}, SecretName: "platform-session"}}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(cm).WithStatusSubresource(cm).
		WithIndex(&v1alpha1.M2MSession{}, indexClusterSessionRef, func(o client.Object) []string {
			if r := o.(*v1alpha1.M2MSession).Spec.ClusterSessionRef; r != nil {
				return []string{r.Name}
			}
			return nil
		}).Build()
	sessions := &M2MSessionReconciler{Deps: Deps{Client: c, Scheme: scheme, Recorder: &events.FakeRecorder{},
		Clock: clocktesting.NewFakeClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))}, statuses: memo.New[v1alpha1.M2MSessionStatus]()}
	r := NewClusterM2MSessionReconciler(sessions)
	req := ctrl.Request{NamespacedName: client.ObjectKey{Name: "platform"}}
	for range 2 {
		if _, err := r.Reconcile(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	got := &v1alpha1.ClusterM2MSession{}
	must(t, c.Get(context.Background(), req.NamespacedName, got))
	ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != v1alpha1.ReasonCredentialsNotFound || ready.Message != noClusterNamespace {
		t.Fatalf("Ready = %+v", ready)
	}
	if len(got.Finalizers) != 0 {
		t.Fatalf("finalizers %v: nothing could be logged out", got.Finalizers)
	}
	// One left from a manager that had the namespace does not hold a deletion.
	got.Finalizers = []string{v1alpha1.LogoutFinalizer}
	must(t, c.Update(context.Background(), got))
	must(t, c.Delete(context.Background(), got))
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), req.NamespacedName, got); !isNotFound(err) {
		t.Fatalf("the deleted ClusterM2MSession is still there (%v): %v", err, got.Finalizers)
	}
}
