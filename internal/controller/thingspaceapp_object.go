package controller

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/policy"
)

// appObject is what the ThingSpaceApp logic keeps a token for: a ThingSpaceApp, or a
// ClusterThingSpaceApp seen through its view (clusterAppView). The logic reads the view and writes
// through the other fields, so the same code serves both kinds.
type appObject struct {
	// app holds the spec, the status to decide from, the generation, the annotations and UID, and the
	// namespace its credentials Secret and its own Secret are in.
	app *v1alpha1.ThingSpaceApp
	// obj is the object itself: it carries the finalizer, owns the Secret (secrets.Writer puts a
	// cluster-scoped owner's in the cluster resource namespace), gets the events and names the metrics.
	obj client.Object
	// who names it in the token broker. A cluster-scoped object's has no namespace, so it never
	// collides with a ThingSpaceApp of the same name in the cluster resource namespace.
	who types.NamespacedName
}

// namespacedApp is a ThingSpaceApp as the logic sees it: itself throughout.
func namespacedApp(app *v1alpha1.ThingSpaceApp) appObject {
	return appObject{app: app, obj: app, who: client.ObjectKeyFromObject(app)}
}

// pass is one reconcile of ao after it was read: deletion, the revoke finalizer, the token, and the
// status (handed to record, which stores it on the object itself) and metrics. ao.app.Status is the
// status this process last decided.
func (r *ThingSpaceAppReconciler) pass(ctx context.Context, ao appObject, record func(*v1alpha1.ThingSpaceAppStatus) error) (ctrl.Result, error) {
	if !ao.obj.GetDeletionTimestamp().IsZero() {
		return ctrl.Result{}, r.finalize(ctx, ao)
	}
	if err := syncFinalizer(ctx, &r.Deps, ao.obj, v1alpha1.RevokeFinalizer, ao.app.Spec.RevokeOnDelete); err != nil {
		return ctrl.Result{}, err
	}
	st := ao.app.Status.DeepCopy()
	res, syncErr := r.sync(ctx, ao, st)
	decided := r.Clock.Now()
	policy.RecordProgress(&st.Conditions, &st.ObservedGeneration, ao.app.Generation, decided)
	if err := record(st); err != nil {
		return ctrl.Result{}, err
	}
	r.recordMetrics(ao.obj, st)
	if syncErr != nil {
		return ctrl.Result{}, syncErr
	}
	return r.sinceDecided(res, decided), nil
}
