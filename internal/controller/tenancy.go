package controller

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/policy"
)

// What the cluster-scoped kinds (ClusterThingSpaceApp, ClusterM2MSession) and their consumers share:
// where the cluster kinds' Secrets live, and which namespaces may consume them.

// Consumers are admitted on their namespace's labels: the namespaces are watched, metadata only.
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// noClusterNamespace is the Ready message of a cluster-scoped object when the manager has no
// --cluster-resource-namespace (outside a cluster, without the flag), under ReasonCredentialsNotFound.
const noClusterNamespace = "the manager has no --cluster-resource-namespace (it runs outside a cluster without the flag), so the credentials Secret of a cluster-scoped object cannot be located"

// clusterAppView is c seen as a ThingSpaceApp in the cluster resource namespace ns: spec, status and
// metadata (UID, generation, annotations) are c's, so the ThingSpaceApp logic runs on it unchanged.
// Writes (status, finalizer, Secrets: secrets.Writer puts a cluster-scoped owner's in its
// ClusterNamespace) and events go to c itself, never to the view.
func clusterAppView(c *v1alpha1.ClusterThingSpaceApp, ns string) *v1alpha1.ThingSpaceApp {
	v := &v1alpha1.ThingSpaceApp{
		ObjectMeta: *c.ObjectMeta.DeepCopy(),
		Spec:       *c.Spec.ThingSpaceAppSpec.DeepCopy(),
		Status:     *c.Status.ThingSpaceAppStatus.DeepCopy(),
	}
	v.Namespace = ns
	return v
}

// namespaceMeta is a metadata-only Namespace (to Get or watch).
func namespaceMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return m
}

// admit decides whether a consumer in namespace ns may use the cluster-scoped kind/name allowing a,
// on the namespace's labels as cached. A namespace the cache does not show (yet) is admitted by name
// only.
func (d Deps) admit(ctx context.Context, kind, name string, a *v1alpha1.AllowedNamespaces, ns string) (policy.Admission, error) {
	m := namespaceMeta()
	if err := d.Get(ctx, client.ObjectKey{Name: ns}, m); err != nil && !apierrors.IsNotFound(err) {
		return policy.Admission{}, err
	}
	return policy.Admit(kind, name, a, ns, m.Labels), nil
}

// countConsumers admits each consumer, given by its namespace, of the cluster-scoped kind/name
// allowing a: the counts of its status.
func (d Deps) countConsumers(ctx context.Context, kind, name string, a *v1alpha1.AllowedNamespaces, consumerNamespaces []string) (v1alpha1.ConsumerStatus, error) {
	adm := make([]policy.Admission, 0, len(consumerNamespaces))
	for _, ns := range consumerNamespaces {
		ad, err := d.admit(ctx, kind, name, a, ns)
		if err != nil {
			return v1alpha1.ConsumerStatus{}, err
		}
		adm = append(adm, ad)
	}
	return policy.CountConsumers(adm), nil
}

// watchNamespaceLabels makes b enqueue what requestsIn returns for a namespace whose labels changed
// (admission may have changed with them).
func watchNamespaceLabels(b *builder.Builder, requestsIn func(ctx context.Context, ns string) []reconcile.Request) *builder.Builder {
	return b.WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return requestsIn(ctx, o.GetName())
	}), builder.WithPredicates(predicate.LabelChangedPredicate{}))
}
