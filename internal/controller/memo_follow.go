package controller

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/memo"
)

// followCache makes mem keep a status only until the manager's cache shows the write that stored it
// (memo.Statuses.Follow): at 10,000 objects of a kind, one status each stayed in memory for the life of
// the process. The cache's event handler tells mem every version it holds; status reads an object's.
func followCache[T client.Object, S any](mgr ctrl.Manager, newObj func() T, mem *memo.Statuses[S], status func(T) S) error {
	inf, err := mgr.GetCache().GetInformer(context.Background(), newObj(), cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	reader := mgr.GetCache()
	mem.Follow(func(who types.NamespacedName) (S, types.UID, bool) {
		o := newObj()
		if err := reader.Get(context.Background(), who, o); err != nil {
			var zero S
			return zero, "", false
		}
		return status(o), o.GetUID(), true
	})
	seen := func(obj any) {
		if o, ok := obj.(T); ok {
			mem.Observed(client.ObjectKeyFromObject(o), o.GetUID(), o.GetResourceVersion())
		}
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: seen, UpdateFunc: func(_, obj any) { seen(obj) }})
	return err
}

// followCaches wires followCache for every kind that remembers its statuses.
func followCaches(mgr ctrl.Manager, apps *ThingSpaceAppReconciler, clusterApps *ClusterThingSpaceAppReconciler,
	sessions *M2MSessionReconciler, clusterSessions *ClusterM2MSessionReconciler) error {
	if err := followCache(mgr, func() *v1alpha1.ThingSpaceApp { return &v1alpha1.ThingSpaceApp{} }, apps.statuses,
		func(o *v1alpha1.ThingSpaceApp) v1alpha1.ThingSpaceAppStatus { return o.Status }); err != nil {
		return err
	}
	if err := followCache(mgr, func() *v1alpha1.ClusterThingSpaceApp { return &v1alpha1.ClusterThingSpaceApp{} }, clusterApps.statuses,
		func(o *v1alpha1.ClusterThingSpaceApp) v1alpha1.ClusterThingSpaceAppStatus { return o.Status }); err != nil {
		return err
	}
	if err := followCache(mgr, func() *v1alpha1.M2MSession { return &v1alpha1.M2MSession{} }, sessions.statuses,
		func(o *v1alpha1.M2MSession) v1alpha1.M2MSessionStatus { return o.Status }); err != nil {
		return err
	}
	return followCache(mgr, func() *v1alpha1.ClusterM2MSession { return &v1alpha1.ClusterM2MSession{} }, clusterSessions.statuses,
		func(o *v1alpha1.ClusterM2MSession) v1alpha1.ClusterM2MSessionStatus { return o.Status })
}
