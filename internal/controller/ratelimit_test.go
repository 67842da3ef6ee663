package controller

import (
	"context"
	"errors"
	"net/url"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// After many passes failed on an unavailable API server, one object's next retry is at most
// maxErrorRetry away (controller-runtime's default doubles to 1000 s); a success resets it. Other
// errors, and an upstream's, go back to controller-runtime as they are.
func TestRetryOutages(t *testing.T) {
	reset := &url.Error{Op: "Patch", URL: "https://api/secrets/a", Err: syscall.ECONNRESET}
	var next error
	r := retryOutages(reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) { return reconcile.Result{}, next }))
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "a"}}
	var last reconcile.Result
	next = reset
	for range 30 {
		res, err := r.Reconcile(context.Background(), req)
		if err != nil {
			t.Fatalf("an outage's error went to controller-runtime: %v", err)
		}
		last = res
	}
	if last.RequeueAfter > maxErrorRetry || last.RequeueAfter < maxErrorRetry/2 {
		t.Fatalf("after 30 failures the wait is %v, want about %v", last.RequeueAfter, maxErrorRetry)
	}
	next = nil
	_, _ = r.Reconcile(context.Background(), req)
	next = reset
	if res, _ := r.Reconcile(context.Background(), req); res.RequeueAfter > 10*time.Millisecond {
		t.Fatalf("after a success the first wait is %v", res.RequeueAfter)
	}
	gr := schema.GroupResource{Resource: "secrets"}
	for _, err := range []error{
		apierrors.NewForbidden(gr, "a", errors.New("rbac")),
		apierrors.NewNotFound(gr, "a"),
		upstream.TransportError(thingspace.API, thingspace.EndpointToken, syscall.ECONNRESET),
	} {
		next = err
		if _, got := r.Reconcile(context.Background(), req); got == nil {
			t.Errorf("%v: not returned to controller-runtime", err)
		}
	}
	for _, err := range []error{apierrors.NewServiceUnavailable("restarting"), apierrors.NewInternalError(errors.New("etcd")), apierrors.NewTooManyRequests("slow down", 1)} {
		next = err
		if _, got := r.Reconcile(context.Background(), req); got != nil {
			t.Errorf("%v: returned as an error, want a prompt retry", err)
		}
	}
}
