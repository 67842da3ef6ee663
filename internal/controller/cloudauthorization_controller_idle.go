package controller

import (
	"context"
	"errors"

	"k8s.io/apimachinery/pkg/api/equality"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/policy"
)

// errNotIdle ends a probe pass (reconcileIdle) at the first thing it would do.
var errNotIdle = errors.New("the pass has something to do")

// idleAction reports whether a decision only waits or keeps what is there: a probe may end with it.
// Everything else spends or asks for a grant and is decided again from reads past the caches.
func idleAction(a policy.CloudAction) bool {
	switch a {
	case policy.CloudKeep, policy.CloudWaitForChange, policy.CloudWaitForSlot,
		policy.CloudAwaitConsent: // with a live link in place; a new one is the pass past the caches' to issue
		return true
	}
	return false
}

// reconcileIdle is the probe: the pass run on the cached CloudAuthorization and its cached Secrets
// (Writer.Get: this process's own writes included before the caches show them), allowed to end only
// when it would write nothing (no Secret, no status, no event) and decide to wait or keep. Then the
// pass is done without a read past the caches, which Reconcile otherwise makes three of (the object,
// the grant and the workload's Secret): at a restart, one pass per object, 30,000 reads for 10,000
// CloudAuthorizations. Anything else (a refresh due, a consent, a marker, a write to make, a status to
// change) is left to the pass past the caches, which decides again from what the API server holds.
func (r *CloudAuthorizationReconciler) reconcileIdle(ctx context.Context, req ctrl.Request) (ctrl.Result, bool) {
	if r.Secrets.Meta == nil { // a Writer without caches (the callback-only process's)
		return ctrl.Result{}, false
	}
	ca := &v1alpha1.CloudAuthorization{}
	if err := r.Get(ctx, req.NamespacedName, ca); err != nil || !ca.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, false
	}
	st := ca.Status.DeepCopy()
	p := &cloudPass{ca: ca, st: st, now: r.Clock.Now(), probe: true}
	res, err := r.sync(ctx, p)
	if err == nil {
		err = r.publish(ctx, p)
	}
	if err != nil || p.notIdle || p.end != nil {
		p.endInFlight()
		return ctrl.Result{}, false
	}
	policy.RecordProgress(&st.Conditions, &st.ObservedGeneration, ca.Generation, r.Clock.Now())
	if !equality.Semantic.DeepEqual(&ca.Status, st) {
		return ctrl.Result{}, false
	}
	recordCloudMetrics(ca, st)
	return res, true
}
