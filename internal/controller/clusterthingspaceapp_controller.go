package controller

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/memo"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/policy"
)

// ClusterThingSpaceAppReconciler keeps each ClusterThingSpaceApp's token valid in its Secret in the
// cluster resource namespace, with the ThingSpaceApp logic itself (Apps.pass over the object's view),
// and counts its consumers.
type ClusterThingSpaceAppReconciler struct {
	// Apps is the ThingSpaceApp reconciler whose logic, broker and dependencies it shares: a
	// ClusterThingSpaceApp and a ThingSpaceApp with the same key share one token.
	Apps *ThingSpaceAppReconciler
	// statuses remembers the status last written per object (see memo.Statuses).
	statuses *memo.Statuses[v1alpha1.ClusterThingSpaceAppStatus]
}

// +kubebuilder:rbac:groups=thingspace.credops.io,resources=clusterthingspaceapps,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=thingspace.credops.io,resources=clusterthingspaceapps/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=thingspace.credops.io,resources=clusterthingspaceapps/finalizers,verbs=update

// clusterWho is a ClusterThingSpaceApp's name in the broker and the memo: no namespace.
func clusterWho(name string) types.NamespacedName { return types.NamespacedName{Name: name} }

// Reconcile brings one ClusterThingSpaceApp's Secret and status up to date and says when to look again.
func (r *ClusterThingSpaceAppReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	a := r.Apps
	c := &v1alpha1.ClusterThingSpaceApp{}
	if err := a.Get(ctx, req.NamespacedName, c); err != nil {
		if apierrors.IsNotFound(err) {
			a.Broker.Unsubscribe(clusterWho(req.Name))
			a.gaveUp.forget(clusterWho(req.Name))
			r.statuses.Forget(clusterWho(req.Name))
			metrics.ForgetApp("", req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	cached := c.Status.DeepCopy()
	known := r.statuses.Get(clusterWho(c.Name), c.UID, c.Status)
	c.Status = *known.DeepCopy()
	counts, err := r.countConsumers(ctx, c)
	if err != nil {
		return ctrl.Result{}, err
	}
	record := func(st *v1alpha1.ThingSpaceAppStatus) error {
		full := v1alpha1.ClusterThingSpaceAppStatus{ThingSpaceAppStatus: *st, ConsumerStatus: counts}
		return memo.Record(ctx, a.Client, r.statuses, c, *cached, full, func(s v1alpha1.ClusterThingSpaceAppStatus) client.Object {
			o := c.DeepCopy()
			o.Status = s
			return o
		})
	}
	if a.ClusterNamespace == "" && c.DeletionTimestamp.IsZero() {
		// Outside a cluster without the flag: there is nowhere to read credentials from or write to.
		st := c.Status.ThingSpaceAppStatus.DeepCopy()
		now := a.Clock.Now()
		setCondition(&st.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound, noClusterNamespace, c.Generation, now)
		policy.RecordProgress(&st.Conditions, &st.ObservedGeneration, c.Generation, now)
		return ctrl.Result{}, record(st)
	}
	ao := appObject{app: clusterAppView(c, a.ClusterNamespace), obj: c, who: clusterWho(c.Name)}
	return a.pass(ctx, ao, record)
}

// countConsumers counts the ThingSpaceApps whose clusterAppRef names c, by whether c allows their
// namespace.
func (r *ClusterThingSpaceAppReconciler) countConsumers(ctx context.Context, c *v1alpha1.ClusterThingSpaceApp) (v1alpha1.ConsumerStatus, error) {
	list := &v1alpha1.ThingSpaceAppList{}
	if err := r.Apps.List(ctx, list, client.MatchingFields{indexClusterAppRef: c.Name}); err != nil {
		return v1alpha1.ConsumerStatus{}, err
	}
	namespaces := make([]string, 0, len(list.Items))
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp.IsZero() {
			namespaces = append(namespaces, list.Items[i].Namespace)
		}
	}
	return r.Apps.countConsumers(ctx, kindClusterApp, c.Name, c.Spec.AllowedNamespaces, namespaces)
}
