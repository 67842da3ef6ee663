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

// ClusterM2MSessionReconciler keeps each ClusterM2MSession's one UWS session alive. It runs the
// M2MSession core (runSession) over a view of the cluster object, with the namespaced sessions' lockout
// gate, pending passwords and token broker: a username's failures count across both kinds, and a
// password reset of either is stored before anything else reads that credentials Secret. Its credentials
// Secret and its own Secret are in the cluster resource namespace; its app is the ClusterThingSpaceApp
// appRef names.
type ClusterM2MSessionReconciler struct {
	// Sessions is the M2MSession reconciler whose core and shared state this one uses.
	Sessions *M2MSessionReconciler
	// statuses is this kind's own memory: keyed by name alone, it never meets a namespaced session's.
	statuses *memo.Statuses[v1alpha1.ClusterM2MSessionStatus]
}

// NewClusterM2MSessionReconciler is the ClusterM2MSession reconciler sharing sessions' core and state.
func NewClusterM2MSessionReconciler(sessions *M2MSessionReconciler) *ClusterM2MSessionReconciler {
	return &ClusterM2MSessionReconciler{Sessions: sessions, statuses: memo.New[v1alpha1.ClusterM2MSessionStatus]()}
}

// +kubebuilder:rbac:groups=thingspace.credops.io,resources=clusterm2msessions,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=thingspace.credops.io,resources=clusterm2msessions/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=thingspace.credops.io,resources=clusterm2msessions/finalizers,verbs=update
// +kubebuilder:rbac:groups=thingspace.credops.io,resources=clusterthingspaceapps,verbs=get;list;watch

// Reconcile brings one ClusterM2MSession's Secret and status (its consumer counts too) up to date.
func (r *ClusterM2MSessionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cm := &v1alpha1.ClusterM2MSession{}
	if err := r.Sessions.Get(ctx, req.NamespacedName, cm); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.ForgetSession("", req.Name)
			r.statuses.Forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	counts, err := r.countConsumers(ctx, cm)
	if err != nil {
		return ctrl.Result{}, err
	}
	ns := r.Sessions.ClusterNamespace
	view := &v1alpha1.M2MSession{ObjectMeta: *cm.ObjectMeta.DeepCopy(), Spec: *cm.Spec.M2MSessionSpec.DeepCopy()}
	withStatus := func(s v1alpha1.ClusterM2MSessionStatus) client.Object {
		c := cm.DeepCopy()
		c.Status = s
		return c
	}
	if ns == "" {
		return r.withoutNamespace(ctx, cm, counts, withStatus)
	}
	return runSession(ctx, r.Sessions, sessionPass[v1alpha1.ClusterM2MSessionStatus]{
		obj: cm, status: &cm.Status, mem: r.statuses, logout: logoutOnDelete(view), withStatus: withStatus,
		state: func(st, cached *v1alpha1.ClusterM2MSessionStatus) *sessState {
			st.ConsumerStatus = counts
			return &sessState{sess: view, obj: cm, st: &st.M2MSessionStatus,
				cached: &cached.M2MSessionStatus, credsNS: ns, apps: r.clusterApps()}
		},
	})
}

// withoutNamespace is a pass of a manager without --cluster-resource-namespace: nothing can be read or
// logged out, so the object says why it is not Ready, and a deleted one just goes.
func (r *ClusterM2MSessionReconciler) withoutNamespace(ctx context.Context, cm *v1alpha1.ClusterM2MSession, counts v1alpha1.ConsumerStatus,
	withStatus func(v1alpha1.ClusterM2MSessionStatus) client.Object) (ctrl.Result, error) {
	if !cm.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, releaseFinalizer(ctx, &r.Sessions.Deps, cm, v1alpha1.LogoutFinalizer)
	}
	now := r.Sessions.Clock.Now()
	st := cm.Status.DeepCopy()
	st.ConsumerStatus = counts
	setCondition(&st.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound, noClusterNamespace, cm.Generation, now)
	policy.RecordProgress(&st.Conditions, &st.ObservedGeneration, cm.Generation, now)
	return ctrl.Result{}, memo.Record(ctx, r.Sessions.Client, r.statuses, cm, cm.Status, *st, withStatus)
}

// clusterApps reads ClusterThingSpaceApps: the core sees one as a ThingSpaceApp in the cluster resource
// namespace (clusterAppView); the app itself owns its token Secret there.
func (r *ClusterM2MSessionReconciler) clusterApps() appSource {
	return appSource{kind: "ClusterThingSpaceApp", get: func(ctx context.Context, name string) (*v1alpha1.ThingSpaceApp, client.Object, error) {
		app := &v1alpha1.ClusterThingSpaceApp{}
		if err := r.Sessions.Get(ctx, types.NamespacedName{Name: name}, app); err != nil {
			return nil, nil, err
		}
		return clusterAppView(app, r.Sessions.ClusterNamespace), app, nil
	}}
}

// countConsumers counts the M2MSessions that name cm, by whether their namespace is allowed.
func (r *ClusterM2MSessionReconciler) countConsumers(ctx context.Context, cm *v1alpha1.ClusterM2MSession) (v1alpha1.ConsumerStatus, error) {
	list := &v1alpha1.M2MSessionList{}
	if err := r.Sessions.List(ctx, list, client.MatchingFields{indexClusterSessionRef: cm.Name}); err != nil {
		return v1alpha1.ConsumerStatus{}, err
	}
	var namespaces []string
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp.IsZero() {
			namespaces = append(namespaces, list.Items[i].Namespace)
		}
	}
	return r.Sessions.countConsumers(ctx, "ClusterM2MSession", cm.Name, cm.Spec.AllowedNamespaces, namespaces)
}
