package controller

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Field index over ThingSpaceApps: which ClusterThingSpaceApp a consumer names.
const indexClusterAppRef = "spec.clusterAppRef.name"

// SetupWithManager registers the ClusterThingSpaceApp controller. notifications carry the broker's
// word that another holder of the key changed the token.
func (r *ClusterThingSpaceAppReconciler) SetupWithManager(mgr ctrl.Manager, w Wiring, notifications <-chan event.TypedGenericEvent[*v1alpha1.ClusterThingSpaceApp]) error {
	if err := indexFields(mgr.GetFieldIndexer(), &v1alpha1.ClusterThingSpaceApp{}, map[string]func(*v1alpha1.ClusterThingSpaceApp) string{
		indexCredentialsSecret: func(c *v1alpha1.ClusterThingSpaceApp) string { return c.Spec.CredentialsSecretRef.NameOrEmpty() },
		indexTargetSecret:      func(c *v1alpha1.ClusterThingSpaceApp) string { return c.Spec.SecretName },
		indexStandbySecret:     func(c *v1alpha1.ClusterThingSpaceApp) string { return c.Spec.StandbyCredentialsSecretRef.NameOrEmpty() },
	}); err != nil {
		return err
	}
	b := kindController(mgr, "clusterthingspaceapp", &v1alpha1.ClusterThingSpaceApp{}).
		// Its credentials Secrets (primary, standby), or a foreign Secret in the way, in the cluster
		// resource namespace.
		WatchesRawSource(source.Kind(w.SecretMeta, secretMeta(),
			handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, s *metav1.PartialObjectMetadata) []reconcile.Request {
				if s.Namespace != r.Apps.ClusterNamespace || s.Namespace == "" {
					return nil
				}
				out := append(r.clusterAppsWhere(ctx, indexCredentialsSecret, s.Name), r.clusterAppsWhere(ctx, indexStandbySecret, s.Name)...)
				return append(out, r.clusterAppsWhere(ctx, indexTargetSecret, s.Name)...)
			}))).
		// Consumers coming, going or changing their reference: the counts in status.
		Watches(&v1alpha1.ThingSpaceApp{}, consumerRefHandler(func(a *v1alpha1.ThingSpaceApp) *v1alpha1.ClusterObjectReference { return a.Spec.ClusterAppRef })).
		WatchesRawSource(source.Channel(notifications, &handler.TypedEnqueueRequestForObject[*v1alpha1.ClusterThingSpaceApp]{})).
		WithOptions(w.controllerOptions())
	// A namespace relabelled: the counts of the ClusterThingSpaceApps its consumers name.
	b = watchNamespaceLabels(b, func(ctx context.Context, ns string) []reconcile.Request {
		list := &v1alpha1.ThingSpaceAppList{}
		if err := r.Apps.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil
		}
		var out []reconcile.Request
		for i := range list.Items {
			if ref := list.Items[i].Spec.ClusterAppRef; ref != nil {
				out = append(out, reconcile.Request{NamespacedName: clusterWho(ref.Name)})
			}
		}
		return out
	})
	return b.Complete(w.observed(r))
}

func (r *ClusterThingSpaceAppReconciler) clusterAppsWhere(ctx context.Context, field, value string) []reconcile.Request {
	return requestsWhere(ctx, r.Apps.Client, &v1alpha1.ClusterThingSpaceAppList{}, "", field, value)
}

// consumerRefHandler enqueues the cluster-scoped object a consumer names, when the consumer is created
// or deleted and, on an update, the ones it named before and after when the reference changed. Status
// writes of consumers enqueue nothing.
func consumerRefHandler[T client.Object](ref func(T) *v1alpha1.ClusterObjectReference) handler.EventHandler {
	add := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], o client.Object) {
		if t, ok := o.(T); ok {
			if r := ref(t); r != nil {
				q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: r.Name}})
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, e.Object)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, e.Object)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if e.ObjectOld.GetGeneration() == e.ObjectNew.GetGeneration() &&
				e.ObjectOld.GetDeletionTimestamp().IsZero() == e.ObjectNew.GetDeletionTimestamp().IsZero() {
				return
			}
			add(q, e.ObjectOld)
			add(q, e.ObjectNew)
		},
	}
}

// ClusterNotifier turns broker notifications into reconcile requests for ClusterThingSpaceApps.
func ClusterNotifier(ch chan<- event.TypedGenericEvent[*v1alpha1.ClusterThingSpaceApp]) func(types.NamespacedName) {
	return func(nn types.NamespacedName) {
		c := &v1alpha1.ClusterThingSpaceApp{}
		c.Name = nn.Name
		ch <- event.TypedGenericEvent[*v1alpha1.ClusterThingSpaceApp]{Object: c}
	}
}

// brokerNotifier routes the broker's notifications by holder: a ClusterThingSpaceApp has no namespace.
func brokerNotifier(apps chan<- event.TypedGenericEvent[*v1alpha1.ThingSpaceApp], clusterApps chan<- event.TypedGenericEvent[*v1alpha1.ClusterThingSpaceApp]) func(types.NamespacedName) {
	app, cluster := Notifier(apps), ClusterNotifier(clusterApps)
	return func(nn types.NamespacedName) {
		if nn.Namespace == "" {
			cluster(nn)
			return
		}
		app(nn)
	}
}

// consumerWatches adds to the ThingSpaceApp controller b what its consumers (clusterAppRef) follow:
// the ClusterThingSpaceApp (its allowedNamespaces, its status), its Secret (a rotation), and their
// namespace's labels (admission).
func (r *ThingSpaceAppReconciler) consumerWatches(b *builder.Builder) *builder.Builder {
	b = b.Watches(&v1alpha1.ClusterThingSpaceApp{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return r.consumersOf(ctx, o.GetName())
	})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			ref := metav1.GetControllerOf(o)
			if ref == nil || ref.Kind != kindClusterApp || ref.APIVersion != v1alpha1.GroupVersion.String() || o.GetNamespace() != r.ClusterNamespace {
				return nil
			}
			return r.consumersOf(ctx, ref.Name)
		}))
	return watchNamespaceLabels(b, func(ctx context.Context, ns string) []reconcile.Request {
		list := &v1alpha1.ThingSpaceAppList{}
		if err := r.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil
		}
		var out []reconcile.Request
		for i := range list.Items {
			if list.Items[i].Spec.ClusterAppRef != nil {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
		}
		return out
	})
}

// consumersOf lists the ThingSpaceApps of every namespace whose clusterAppRef names name.
func (r *ThingSpaceAppReconciler) consumersOf(ctx context.Context, name string) []reconcile.Request {
	return requestsWhere(ctx, r.Client, &v1alpha1.ThingSpaceAppList{}, "", indexClusterAppRef, name)
}
