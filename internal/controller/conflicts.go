package controller

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// quietConflicts turns a write conflict into a backed-off requeue instead of a "Reconciler error" with a
// stack trace. A conflict means only that the cache was behind the object (typically right after a start,
// or when another writer raced): the next pass reads the newer version and decides again, so it is
// routine, not an error worth a page. The backoff is per request and grows like the work queue's own, so
// a conflict that keeps recurring never turns into a hot loop; any other outcome resets it.
func quietConflicts(r reconcile.Reconciler) reconcile.Reconciler {
	backoff := workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](50*time.Millisecond, 30*time.Second)
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		res, err := r.Reconcile(ctx, req)
		if err == nil || !apierrors.IsConflict(err) {
			backoff.Forget(req)
			return res, err
		}
		delay := backoff.When(req)
		ctrl.LoggerFrom(ctx).V(1).Info("Write conflict; reconciling again with the newer object", "after", delay.String())
		return reconcile.Result{RequeueAfter: delay}, nil
	})
}
