package controller

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// SetupWithManager registers the ClusterM2MSession controller. It relies on the M2MSession controller's
// index of consumers (indexClusterSessionRef), registered first.
func (r *ClusterM2MSessionReconciler) SetupWithManager(mgr ctrl.Manager, w Wiring) error {
	if err := indexFields(mgr.GetFieldIndexer(), &v1alpha1.ClusterM2MSession{}, map[string]func(*v1alpha1.ClusterM2MSession) string{
		indexAppRef:            func(s *v1alpha1.ClusterM2MSession) string { return s.Spec.AppRef.NameOrEmpty() },
		indexCredentialsSecret: func(s *v1alpha1.ClusterM2MSession) string { return s.Spec.CredentialsSecretRef.NameOrEmpty() },
		indexTargetSecret:      func(s *v1alpha1.ClusterM2MSession) string { return s.Spec.SecretName },
	}); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("clusterm2msession").
		For(&v1alpha1.ClusterM2MSession{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}).
		// The app's token rotating (its Secret) or the app itself changing.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			ref := metav1.GetControllerOf(o)
			if ref == nil || ref.Kind != "ClusterThingSpaceApp" || ref.APIVersion != v1alpha1.GroupVersion.String() {
				return nil
			}
			return r.where(ctx, indexAppRef, ref.Name)
		})).
		Watches(&v1alpha1.ClusterThingSpaceApp{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return r.where(ctx, indexAppRef, o.GetName())
		})).
		// Its credentials Secret, or a foreign Secret in the way of its own, in the cluster resource namespace.
		WatchesRawSource(source.Kind(w.SecretMeta, secretMeta(),
			handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, s *metav1.PartialObjectMetadata) []reconcile.Request {
				if s.Namespace != r.Sessions.ClusterNamespace {
					return nil
				}
				return append(r.where(ctx, indexCredentialsSecret, s.Name), r.where(ctx, indexTargetSecret, s.Name)...)
			}))).
		// Consumers coming, going or changing their reference, and their namespaces' labels: the counts.
		Watches(&v1alpha1.M2MSession{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return consumedBy(o.(*v1alpha1.M2MSession))
		}), builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	// A namespace relabelled: the counts of the cluster sessions its consumers name.
	return watchNamespaceLabels(b, func(ctx context.Context, ns string) []reconcile.Request {
		var out []reconcile.Request
		for _, s := range r.Sessions.consumersIn(ctx, ns) {
			out = append(out, consumedBy(&s)...)
		}
		return out
	}).
		WithOptions(w.controllerOptions()).
		Complete(w.observed(r))
}

func (r *ClusterM2MSessionReconciler) where(ctx context.Context, field, value string) []reconcile.Request {
	return requestsWhere(ctx, r.Sessions.Client, &v1alpha1.ClusterM2MSessionList{}, "", field, value)
}

// consumedBy is the ClusterM2MSession a consumer names, as a request.
func consumedBy(s *v1alpha1.M2MSession) []reconcile.Request {
	if s.Spec.ClusterSessionRef == nil {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: s.Spec.ClusterSessionRef.Name}}}
}
