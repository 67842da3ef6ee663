package controller

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// An M2MSession whose appRef names a consumer of a ClusterThingSpaceApp (spec.clusterAppRef) logs in
// with the token the consumer holds. The consumer has no endpoint, CA or credentials of its own: the
// session's calls go to the ClusterThingSpaceApp's endpoint, and a bearer the gateway rejects is
// replaced through the broker with the ClusterThingSpaceApp's credentials (which notifies it; its
// consumers then copy the new token). Only a namespace the ClusterThingSpaceApp allows gets this far.

// notAllowedError says a session's namespace may not use the ClusterThingSpaceApp its app consumes.
type notAllowedError struct{ msg string }

func (e *notAllowedError) Error() string { return e.msg }

// consumedApp returns, for the consumer app, what the session core uses as its app: the
// ClusterThingSpaceApp's spec (endpoint, CA, scope, credentials, in the cluster resource namespace)
// with the consumer's name and Secret, and the consumer as the owner of that Secret. A
// ClusterThingSpaceApp that is gone is a NotFound error (the session waits with AppNotReady); one that
// does not allow the namespace, a *notAllowedError.
func (d Deps) consumedApp(ctx context.Context, consumer *v1alpha1.ThingSpaceApp) (*v1alpha1.ThingSpaceApp, client.Object, error) {
	c := &v1alpha1.ClusterThingSpaceApp{}
	if err := d.Get(ctx, client.ObjectKey{Name: consumer.Spec.ClusterAppRef.Name}, c); err != nil {
		return nil, nil, err
	}
	adm, err := d.admit(ctx, kindClusterApp, c.Name, c.Spec.AllowedNamespaces, consumer.Namespace)
	if err != nil {
		return nil, nil, err
	}
	if !adm.Allowed {
		return nil, nil, &notAllowedError{msg: "ThingSpaceApp " + consumer.Name + ": " + adm.Message}
	}
	v := clusterAppView(c, d.ClusterNamespace)
	v.Name, v.Spec.SecretName = consumer.Name, consumer.Spec.SecretName
	return v, consumer, nil
}
