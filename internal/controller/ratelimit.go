package controller

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/credops/thingspace-operator/internal/upstream"
)

// retryOutages retries a pass that failed because the API server was unavailable (unreachable, a reset
// connection, a timeout, a 5xx or 429) at most maxErrorRetry later. controller-runtime's rate limiter
// doubles an object's wait from 5 ms up to 1000 s: across an API outage of a few seconds the waits grew
// to seconds, and after the API server came back a dead token stayed in its Secret until the next one
// (chaos seed 55 at 37e248f: 0.6 s on three Secrets after a 3 s outage; after a longer outage,
// minutes). The whole queue still retries at most 10 a second past a burst of 100 (the default's
// bucket), so a fleet failing together does not hammer a recovering API server. Any other error (a
// refusal such as Forbidden, which waits for a person) keeps the default's growing backoff.
func retryOutages(r reconcile.Reconciler) reconcile.Reconciler {
	rl := outageRateLimiter()
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		res, err := r.Reconcile(ctx, req)
		if err == nil || !apiUnavailable(err) {
			rl.Forget(req)
			return res, err
		}
		delay := rl.When(req)
		ctrl.LoggerFrom(ctx).Info("The Kubernetes API is unavailable; trying again", "error", err.Error(), "after", delay.String())
		return reconcile.Result{RequeueAfter: delay}, nil
	})
}

func outageRateLimiter() workqueue.TypedRateLimiter[reconcile.Request] {
	return workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, maxErrorRetry),
		&workqueue.TypedBucketRateLimiter[reconcile.Request]{Limiter: rate.NewLimiter(rate.Limit(10), 100)},
	)
}

// maxErrorRetry caps the wait before one object's pass is retried after the API server was unavailable.
const maxErrorRetry = 500 * time.Millisecond

// apiUnavailable says whether err is the Kubernetes API server's being away: a transport failure or
// an answer that says so. An upstream's errors are never: their retries are planned by policy.
func apiUnavailable(err error) bool {
	if _, ok := errors.AsType[*upstream.Error](err); ok {
		return false
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		switch st.Status().Code {
		case http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests:
			return true
		}
		return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err)
	}
	_, isURL := errors.AsType[*url.Error](err)
	_, isNet := errors.AsType[net.Error](err)
	return isURL || isNet
}
