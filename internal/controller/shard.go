package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/holders"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
)

// Sharding: several managers split a fleet, each watching the objects of its own label selector
// (--watch-label-selector) and/or namespaces, under a leader-election ID of its own. Objects of the
// operator's kinds outside the selector are not cached, so never reconciled; the Secrets it writes stay
// cached by their managed-by label (an owner outside the cache maps to a request that finds nothing).

// shardKinds are the kinds a label selector splits.
func shardKinds() []client.Object {
	return []client.Object{&v1alpha1.ThingSpaceApp{}, &v1alpha1.ClusterThingSpaceApp{}, &v1alpha1.M2MSession{},
		&v1alpha1.ClusterM2MSession{}, &v1alpha1.CloudAuthorization{}}
}

// ShardCacheOptions are CacheOptionsFor(namespaces) with the operator's kinds restricted to selector
// (nil or empty: all of them).
func ShardCacheOptions(namespaces []string, selector labels.Selector) cache.Options {
	o := CacheOptionsFor(namespaces)
	if selector == nil || selector.Empty() {
		return o
	}
	s := runtime.NewScheme()
	utilruntime.Must(v1alpha1.AddToScheme(s))
	gvk := func(obj client.Object) string {
		k, err := apiutil.GVKForObject(obj, s)
		if err != nil {
			return ""
		}
		return k.String()
	}
	if o.ByObject == nil {
		o.ByObject = map[client.Object]cache.ByObject{}
	}
	for _, kind := range shardKinds() {
		want, found := gvk(kind), false
		for obj, by := range o.ByObject { // keep what CacheOptionsFor set for the kind (a transform)
			if gvk(obj) == want {
				by.Label, found = selector, true
				o.ByObject[obj] = by
			}
		}
		if !found {
			o.ByObject[kind] = cache.ByObject{Label: selector}
		}
	}
	return o
}

// HolderRegistry is the cross-process guard against revoking a token another manager holds
// (internal/holders.Registry).
type HolderRegistry interface {
	// Hold records that this manager holds key's token; cheap when recorded recently.
	Hold(ctx context.Context, key tokenbroker.Key) error
	// Others counts the other live managers holding key's token.
	Others(ctx context.Context, key tokenbroker.Key) (int, error)
}

// guardRevoke registers the app's key and, when d would rotate (revoking the current token) while
// another manager holds the key, decides again with the token SharedElsewhere: no revoke, renewal at
// expiry (policy/shard.go). Without a registry it returns d.
func (r *ThingSpaceAppReconciler) guardRevoke(ctx context.Context, s *appState, d policy.AppDecision) (policy.AppDecision, error) {
	if r.Holders == nil {
		return d, nil
	}
	if err := r.Holders.Hold(ctx, s.key); err != nil {
		// Serving the token matters more; the next pass registers again.
		log.FromContext(ctx).Info("Could not register in the holder registry", "error", err.Error())
	}
	if d.Step != policy.AppRotate {
		return d, nil
	}
	n, err := r.Holders.Others(ctx, s.key)
	if err != nil || n == 0 {
		return d, err // unknown: no revoke now, the error retries the pass
	}
	s.in.SharedElsewhere = true
	d = policy.DecideApp(s.in)
	s.sharedNote = fmt.Sprintf("; not renewed before it expires: %d other manager(s) hold this key's token, which a revoke would end", n)
	if d.RevokeSkipped != "" {
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeNormal, v1alpha1.EventRevokeSkipped, "RevokeToken",
			"Not revoking the token (%s): %d other manager(s) hold this key's token; it is renewed when it expires", d.RevokeSkipped, n)
	}
	return d, nil
}

// heldByOtherManagers says why a token must not be revoked on deletion when another manager holds key
// ("" when none does).
func (r *ThingSpaceAppReconciler) heldByOtherManagers(ctx context.Context, key tokenbroker.Key) (string, error) {
	if r.Holders == nil {
		return "", nil
	}
	n, err := r.Holders.Others(ctx, key)
	if err != nil || n == 0 {
		return "", err
	}
	return fmt.Sprintf("it is still held by %d other manager(s) of this cluster; it expires on its own", n), nil
}

// otherShard is the Ready message of an object whose dependency kind/key, not in the cache, is in
// another shard; "" when it is not (or the manager is no shard).
func (d Deps) otherShard(ctx context.Context, kind string, key client.ObjectKey, obj client.Object) string {
	if !d.inOtherShard(ctx, key, obj) {
		return ""
	}
	return otherShardMessage(kind, key.Name, d.ShardSelector)
}

// appInOtherShard is otherShard for the app an M2MSession's appRef names: a ThingSpaceApp in its
// namespace (an M2MSession's) or a ClusterThingSpaceApp (a ClusterM2MSession's).
func (r *M2MSessionReconciler) appInOtherShard(ctx context.Context, s *sessState) string {
	key := client.ObjectKey{Namespace: s.sess.Namespace, Name: s.sess.Spec.AppRef.Name}
	var obj client.Object = &v1alpha1.ThingSpaceApp{}
	if s.apps.kind == kindClusterApp {
		key.Namespace, obj = "", &v1alpha1.ClusterThingSpaceApp{}
	}
	return r.otherShard(ctx, s.apps.kind, key, obj)
}

// inOtherShard says whether the object key names, not in this manager's cache, exists outside its
// shard (its label selector): the dependent object then says so (ReasonOtherShard) rather than that it
// is missing. One read past the cache, only for a reference the cache cannot resolve and only when
// the manager has a selector.
func (d Deps) inOtherShard(ctx context.Context, key client.ObjectKey, obj client.Object) bool {
	if d.ShardSelector == nil || d.ShardSelector.Empty() {
		return false
	}
	if err := d.APIReader.Get(ctx, key, obj); err != nil {
		if !apierrors.IsNotFound(err) {
			log.FromContext(ctx).Info("Could not tell whether a reference is in another shard", "error", err.Error())
		}
		return false
	}
	return !d.ShardSelector.Matches(labels.Set(obj.GetLabels()))
}

// otherShardMessage is the Ready message of an object whose dependency is in another shard.
func otherShardMessage(kind, name string, sel labels.Selector) string {
	return fmt.Sprintf("%s %s belongs to another shard (it does not match this manager's label selector %q): an object and the %s it uses must be in the same shard", kind, name, sel.String(), kind)
}

// ShardOptions are Options for a manager that is one shard of several.
type ShardOptions struct {
	// LabelSelector, when set, is the shard (--watch-label-selector): the manager's cache must have been
	// built with ShardCacheOptions of the same selector.
	LabelSelector labels.Selector
	// RegistryNamespace, when set, holds the holder registry (--holder-registry-namespace); "" means no
	// registry: the manager assumes no other process holds its keys.
	RegistryNamespace string
	// Identity names the shard in the registry: its leader-election ID (DefaultShardIdentity when "").
	Identity string
	// RenewEvery is the registry's renewal period (holders.DefaultRenewEvery when zero; tests shorten it).
	RenewEvery time.Duration
}

// DefaultShardIdentity is the manager's default leader-election ID, and so its identity as a holder.
const DefaultShardIdentity = "thingspace-operator.credops.io"

// setupShard gives deps the shard's selector and, with a registry namespace, the holder registry and
// its renewer (on the leader, beside the reconcilers).
func setupShard(mgr ctrl.Manager, o Options, deps *Deps, broker *tokenbroker.Broker) error {
	deps.ShardSelector = o.Shard.LabelSelector
	if o.Shard.RegistryNamespace == "" {
		return nil
	}
	id := o.Shard.Identity
	if id == "" {
		id = DefaultShardIdentity
	}
	reg := &holders.Registry{Reader: mgr.GetAPIReader(), Writer: mgr.GetClient(), Namespace: o.Shard.RegistryNamespace,
		Identity: id, Clock: o.Clock, RenewEvery: o.Shard.RenewEvery}
	if o.Shard.RenewEvery > 0 {
		reg.Duration = 3 * o.Shard.RenewEvery
	}
	deps.Holders = reg
	ticker, _ := o.Clock.(clock.WithTicker)
	return mgr.Add(holders.Renewer{Registry: reg, Held: broker.HeldKeys, Ticker: ticker, Log: mgr.GetLogger().WithName("holders")})
}
