package controller

import (
	"context"
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func TestQuietConflictsRequeuesWithGrowingBackoff(t *testing.T) {
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, "out", errors.New("the object has been modified"))
	other := errors.New("upstream down")
	var next error
	r := quietConflicts(reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) { return reconcile.Result{}, next }))
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "a", Name: "b"}}

	next = conflict
	first, err := r.Reconcile(context.Background(), req)
	if err != nil || first.RequeueAfter <= 0 {
		t.Fatalf("conflict: got %+v, %v; want a requeue and no error", first, err)
	}
	second, _ := r.Reconcile(context.Background(), req)
	if second.RequeueAfter <= first.RequeueAfter {
		t.Errorf("repeated conflict requeued after %v then %v: the backoff must grow", first.RequeueAfter, second.RequeueAfter)
	}
	next = other
	if _, err := r.Reconcile(context.Background(), req); !errors.Is(err, other) {
		t.Errorf("other errors must pass through, got %v", err)
	}
	next = conflict
	if again, _ := r.Reconcile(context.Background(), req); again.RequeueAfter != first.RequeueAfter {
		t.Errorf("after another outcome the backoff restarts: got %v, want %v", again.RequeueAfter, first.RequeueAfter)
	}
}
