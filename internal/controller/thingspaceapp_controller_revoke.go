package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// whyRevokeOnDelete is told to the other holders of a token revoked on deletion.
const whyRevokeOnDelete = "revokeOnDelete"

// finalize revokes the token of an app with revokeOnDelete, then lets it go.
func (r *ThingSpaceAppReconciler) finalize(ctx context.Context, ao appObject) error {
	if !controllerutil.ContainsFinalizer(ao.obj, v1alpha1.RevokeFinalizer) {
		r.Broker.Unsubscribe(ao.who)
		return nil
	}
	if ao.app.Spec.RevokeOnDelete {
		if err := r.revokeHeld(ctx, ao); err != nil {
			return err
		}
	}
	r.Broker.Unsubscribe(ao.who)
	return releaseFinalizer(ctx, &r.Deps, ao.obj, v1alpha1.RevokeFinalizer)
}

// revokeHeld revokes the unexpired token in the app's Secret, unless another object still holds it
// (issue 8 scenario 9: apps never revoke under each other; the consumers of a ClusterThingSpaceApp
// hold its token too). What is not revoked (another holder, no Secret, no credentials, a token other
// credentials issued, credentials rejected) is reported in an event and given up on; transient
// failures are returned so the deletion is retried (at worst until the token has expired anyway).
func (r *ThingSpaceAppReconciler) revokeHeld(ctx context.Context, ao appObject) error {
	app := ao.app
	owned, err := r.Secrets.Get(ctx, ao.obj, app.Spec.SecretName)
	if err != nil && !isConflict(err) {
		return err
	}
	sec := secretToken(owned)
	if sec.AccessToken == "" || !r.Clock.Now().Before(sec.ExpiresAt) {
		return nil
	}
	skip := func(why string) error {
		r.Recorder.Eventf(ao.obj, nil, corev1.EventTypeNormal, v1alpha1.EventRevokeSkipped, "RevokeToken", "Not revoking the token: %s", why)
		return nil
	}
	iss, err := r.Endpoints.ThingSpace(endpointOf(app), app.Spec.CABundle)
	if err != nil {
		return skip(err.Error())
	}
	cs, err := readCredentials(ctx, r.credentialsReader(), app.Namespace, app.Spec.CredentialsSecretRef.Name, credKey, credSecret)
	var missing *credentialsError
	if errors.As(err, &missing) {
		return skip(missing.Error())
	} else if err != nil {
		return err
	}
	creds := thingspace.Credentials{Key: cs.values[credKey], Secret: cs.values[credSecret]}
	key := tokenbroker.NewKey(endpointOf(app), creds)
	if sec.Provenance != key.Provenance(sec.AccessToken) {
		// The standby key set's token (issue 11 §1). The token it replaced at the last handover is
		// not revoked: it expires on its own, at most handoverBefore after that handover.
		if sb, ok := r.standbyIssued(ctx, app, sec); ok {
			key, creds = sb.key, sb.creds
		}
	}
	// Only the credentials that issued a token may revoke it (scenario 2); the expiry does not matter.
	if sec.Provenance != key.Provenance(sec.AccessToken) {
		return skip("the token in the Secret was not issued for the current endpoint and credentials")
	}
	if _, done := r.Broker.RevokedBy(key, sec.AccessToken); done {
		return nil // revoked already (a pass whose finalizer release failed, or another holder's rotation)
	}
	others, err := r.otherHolders(ctx, ao, key, sec.AccessToken)
	if err != nil {
		return err
	}
	if others != "" {
		return skip("it is still held by " + others + "; it expires on its own")
	}
	if elsewhere, err := r.heldByOtherManagers(ctx, key); err != nil {
		return err
	} else if elsewhere != "" {
		return skip(elsewhere)
	}
	err = r.Broker.Revoke(ctx, key, ao.who, iss, creds, sec.AccessToken, whyRevokeOnDelete)
	switch {
	case err == nil:
		r.Recorder.Eventf(ao.obj, nil, corev1.EventTypeNormal, v1alpha1.EventRevoked, "RevokeToken", "Revoked the token on deletion")
		return nil
	case upstream.IsTransient(err) || upstream.KindOf(err) == upstream.Unknown:
		return err
	default:
		r.Recorder.Eventf(ao.obj, nil, corev1.EventTypeWarning, v1alpha1.EventRevokeFailed, "RevokeToken", "Could not revoke the token: %s", err.Error())
		return nil
	}
}

// otherHolders describes the objects other than ao that hold tok: the broker's other holders of key
// (apps of this process on the same key) and the owners of managed Secrets holding tok (apps, sessions,
// the consumers of a ClusterThingSpaceApp, found through the cache even before they reconciled after a
// restart). Objects of other namespaces and cluster-scoped ones are only counted, never named. ""
// means none.
func (r *ThingSpaceAppReconciler) otherHolders(ctx context.Context, ao appObject, key tokenbroker.Key, tok string) (string, error) {
	named, elsewhere := map[string]bool{}, map[string]bool{}
	add := func(kind, ns, name string) {
		if ns == ao.app.Namespace && ns == ao.obj.GetNamespace() {
			named[kind+" "+name] = true
		} else {
			elsewhere[kind+" "+ns+"/"+name] = true
		}
	}
	for _, h := range r.Broker.OtherHolders(key, ao.who) {
		// A holder being deleted too decides for itself: two apps going at once must not each spare the
		// token for the other.
		kind, live, err := r.liveHolder(ctx, h)
		if err != nil {
			return "", err
		}
		if live {
			add(kind, h.Namespace, h.Name)
		}
	}
	list := &corev1.SecretList{}
	if err := r.List(ctx, list, client.MatchingLabels{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}); err != nil {
		return "", err
	}
	for i := range list.Items {
		s := &list.Items[i]
		if string(s.Data[KeyAccessToken]) != tok {
			continue
		}
		if ref := metav1.GetControllerOf(s); ref != nil && ref.UID != ao.app.UID {
			live, err := r.liveOwner(ctx, s.Namespace, ref)
			if err != nil {
				return "", err
			}
			if live {
				add(ref.Kind, s.Namespace, ref.Name)
			}
		}
	}
	names := make([]string, 0, len(named))
	for n := range named {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(elsewhere) > 0 {
		names = append(names, fmt.Sprintf("%d object(s) in other namespaces or cluster-scoped", len(elsewhere)))
	}
	return strings.Join(names, ", "), nil
}

// liveHolder says what kind a broker holder is (a ThingSpaceApp, or a ClusterThingSpaceApp: no
// namespace) and whether it exists and is not being deleted.
func (r *ThingSpaceAppReconciler) liveHolder(ctx context.Context, h types.NamespacedName) (string, bool, error) {
	var obj client.Object = &v1alpha1.ThingSpaceApp{}
	if h.Namespace == "" {
		obj = &v1alpha1.ClusterThingSpaceApp{}
	}
	if err := r.Get(ctx, h, obj); err != nil {
		return "", false, client.IgnoreNotFound(err)
	}
	kind := "ThingSpaceApp"
	if h.Namespace == "" {
		kind = "ClusterThingSpaceApp"
	}
	return kind, obj.GetDeletionTimestamp().IsZero(), nil
}

// liveOwner reports whether ref, the controller of a managed Secret in ns, exists and is not being
// deleted: a Secret left behind until garbage collection holds a token for nobody. The cluster-scoped
// kinds' Secrets are in the cluster resource namespace, their owners in no namespace.
func (r *ThingSpaceAppReconciler) liveOwner(ctx context.Context, ns string, ref *metav1.OwnerReference) (bool, error) {
	var obj client.Object
	switch ref.Kind {
	case "ThingSpaceApp":
		obj = &v1alpha1.ThingSpaceApp{}
	case "M2MSession":
		obj = &v1alpha1.M2MSession{}
	case "ClusterThingSpaceApp":
		obj, ns = &v1alpha1.ClusterThingSpaceApp{}, ""
	case "ClusterM2MSession":
		obj, ns = &v1alpha1.ClusterM2MSession{}, ""
	default:
		return false, nil // no other kind holds a ThingSpace app token
	}
	if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, obj); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return obj.GetUID() == ref.UID && obj.GetDeletionTimestamp().IsZero(), nil
}

// standbyIssued returns the standby key set when it issued sec's token; errors reading it count as no.
func (r *ThingSpaceAppReconciler) standbyIssued(ctx context.Context, app *v1alpha1.ThingSpaceApp, sec policy.SecretToken) (keySet, bool) {
	ref := app.Spec.StandbyCredentialsSecretRef
	if ref == nil || ref.Name == "" {
		return keySet{}, false
	}
	cs, err := readCredentials(ctx, r.APIReader, app.Namespace, ref.Name, credKey, credSecret)
	if err != nil {
		return keySet{}, false
	}
	creds := thingspace.Credentials{Key: cs.values[credKey], Secret: cs.values[credSecret]}
	key := tokenbroker.NewKey(endpointOf(app), creds)
	return keySet{name: v1alpha1.KeySetStandby, key: key, creds: creds}, sec.Provenance == key.Provenance(sec.AccessToken)
}
