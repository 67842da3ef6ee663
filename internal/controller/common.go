package controller

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/secrets"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// Deps are what every reconciler uses; Setup builds one set for all of them.
type Deps struct {
	client.Client
	// APIReader reads past the caches (credentials Secrets; CloudAuthorizations and their Secrets).
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// Rand returns values in [0,1) for jitter.
	Rand      func() float64
	Secrets   *secrets.Writer
	Endpoints *Endpoints
	Backoff   renewal.Backoff
}

// patchStatus writes updated's status when, and only when, it differs from orig's: one write per
// reconcile at most, none when nothing changed.
func patchStatus(ctx context.Context, c client.Client, orig, updated client.Object, origStatus, newStatus any) error {
	if equality.Semantic.DeepEqual(origStatus, newStatus) {
		return nil
	}
	return c.Status().Patch(ctx, updated, client.MergeFrom(orig))
}

// syncFinalizer makes obj carry finalizer exactly when want is true.
func syncFinalizer(ctx context.Context, c client.Client, obj client.Object, finalizer string, want bool) error {
	if controllerutil.ContainsFinalizer(obj, finalizer) == want {
		return nil
	}
	orig := obj.DeepCopyObject().(client.Object)
	if want {
		controllerutil.AddFinalizer(obj, finalizer)
	} else {
		controllerutil.RemoveFinalizer(obj, finalizer)
	}
	return c.Patch(ctx, obj, client.MergeFrom(orig))
}

// releaseFinalizer removes finalizer from obj, tolerating an object that is already gone.
func releaseFinalizer(ctx context.Context, c client.Client, obj client.Object, finalizer string) error {
	orig := obj.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(obj, finalizer)
	return client.IgnoreNotFound(c.Patch(ctx, obj, client.MergeFrom(orig)))
}

// setCondition sets a condition with the injected clock's time; meta.SetStatusCondition keeps the
// transition time when the status does not flip.
func setCondition(conds *[]metav1.Condition, typ string, status metav1.ConditionStatus, reason, msg string, gen int64, now time.Time) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: gen, LastTransitionTime: metav1.NewTime(renewal.Truncate(now)),
	})
}

// gatedByGeneration reports whether a condition was set for the current generation: a decision that
// waits "until the spec changes" compares against it.
func gatedByGeneration(conds []metav1.Condition, typ string, gen int64) bool {
	c := meta.FindStatusCondition(conds, typ)
	return c != nil && c.ObservedGeneration == gen
}

func timePtr(t time.Time) *metav1.Time {
	mt := metav1.NewTime(renewal.Truncate(t))
	return &mt
}

// requeueAt asks to be woken at t, and never sooner than renewal.MinRetryDelay from now.
func requeueAt(now, t time.Time) ctrl.Result {
	return ctrl.Result{RequeueAfter: max(t.Sub(now), renewal.MinRetryDelay)}
}

// expiryLayout is RFC 3339 in UTC with milliseconds: the operator replaces tokens at that precision,
// and a reader comparing an expiry with its clock must not see a token outlive its published expiry.
const expiryLayout = "2006-01-02T15:04:05.000Z07:00"

func formatExpiry(t time.Time) string { return t.UTC().Format(expiryLayout) }

// retryPlan is when to try again after a transient upstream failure.
type retryPlan struct {
	delay time.Duration
	at    time.Time
	// ready, reason and message describe the credential meanwhile.
	ready   metav1.ConditionStatus
	reason  string
	message string
}

// planRetry backs off after the failures-th consecutive failure err, honouring Retry-After and pulling
// the retry in ahead of held's expiry. The slot is rounded up to the whole second, the precision of the
// status time a later pass is gated on: rounding down would retry before Retry-After.
func planRetry(b renewal.Backoff, failures int32, rnd float64, err error, held tokenbroker.Token, now time.Time) retryPlan {
	retryAfter, _ := upstream.RetryAfterOf(err)
	var untilExpiry time.Duration
	if held.AccessToken != "" {
		untilExpiry = held.ExpiresAt.Sub(now)
	}
	at := now.Add(b.RetryDelay(failures, rnd, retryAfter, untilExpiry))
	if t := renewal.Truncate(at); !t.Equal(at) {
		at = t.Add(time.Second)
	}
	p := retryPlan{delay: at.Sub(now), at: at}
	if untilExpiry > 0 {
		p.ready, p.reason = metav1.ConditionTrue, v1alpha1.ReasonRefreshFailing
		p.message = fmt.Sprintf("The token is valid until %s, but refreshing failed (%s, attempt %d); next try at %s",
			held.ExpiresAt.UTC().Format(time.RFC3339), err.Error(), failures, at.UTC().Format(time.RFC3339))
	} else {
		p.ready, p.reason = metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable
		p.message = fmt.Sprintf("No valid token: %s (attempt %d); next try at %s", err.Error(), failures, at.UTC().Format(time.RFC3339))
	}
	return p
}
