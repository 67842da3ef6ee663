// Package holders is the registry through which managers of one cluster (the shards of a fleet) tell
// each other which ThingSpace app keys they hold a token of.
//
// ThingSpace keeps one active token per key: two shards whose objects use the same key share it, and a
// revoke by one ends it for the other, which has no way to know (its broker, internal/tokenbroker,
// sees only its own process). So every manager keeps a coordination.k8s.io Lease per key it holds in
// one namespace all of them share, named and labelled by the key's holder digest
// (tokenbroker.Key.HolderDigest: neither the key nor its secret), its holderIdentity the manager's
// shard (its leader-election ID: the replicas of one shard are one holder). Before revoking, a manager
// asks whether another shard's Lease for the key is live; if so it does not revoke.
//
// It costs no upstream call and few API writes: a Lease is created when a key is first held, renewed
// once per RenewEvery by the Renewer (3 writes per key and hour by default), and deleted by the Renewer
// once no object holds the key any more; the check before a revoke is one list. A manager that dies
// leaves its Leases to expire after Duration: until then the others only forgo revokes (renewBefore
// becomes renewal at expiry), which is the safe side.
package holders

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/internal/tokenbroker"
)

// Labels of the registry's Leases.
const (
	// LabelKey is the first 40 hex digits of the key's holder digest (a label value is at most 63).
	LabelKey = "thingspace.credops.io/holder-key"
	// LabelHolder is a digest of the holder's identity: the Leases one manager may renew and delete.
	LabelHolder = "thingspace.credops.io/holder"
	// LabelComponent marks the Leases as the registry's.
	LabelComponent = "app.kubernetes.io/component"
	componentValue = "holder-registry"
)

// Defaults of Registry.
const (
	DefaultRenewEvery = 20 * time.Minute
	// DefaultDuration outlives two missed renewals.
	DefaultDuration = 3 * DefaultRenewEvery
)

// Registry is one manager's view of the holder registry.
type Registry struct {
	// Reader reads the Leases past any cache (the manager's API reader); Writer creates, updates and
	// deletes them.
	Reader client.Reader
	Writer client.Writer
	// Namespace holds the Leases: the same for every shard that may share a key.
	Namespace string
	// Identity names this manager's shard (its leader-election ID).
	Identity string
	Clock    clock.PassiveClock
	// RenewEvery and Duration default to DefaultRenewEvery and DefaultDuration.
	RenewEvery, Duration time.Duration

	mu sync.Mutex
	// renewed is when this process last wrote the Lease of each key digest.
	renewed map[string]time.Time
	writes  atomic.Int64
}

// Writes counts the API writes the registry made (creates, updates, deletes).
func (r *Registry) Writes() int64 { return r.writes.Load() }

func (r *Registry) renewEvery() time.Duration {
	if r.RenewEvery > 0 {
		return r.RenewEvery
	}
	return DefaultRenewEvery
}

func (r *Registry) duration() time.Duration {
	if r.Duration > 0 {
		return r.Duration
	}
	return DefaultDuration
}

func shortDigest(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

func (r *Registry) holderLabel() string {
	return shortDigest("thingspace-operator/holder-id/v1\x00"+r.Identity, 16)
}

func leaseName(digest, holder string) string { return "tsop-holder-" + digest[:40] + "-" + holder }

// Hold records that this manager holds key's token. It writes when this process has not written the
// key's Lease yet, or not within half its Duration (the Renewer stalled), so calling it on every
// reconcile costs nothing but the first time; renewals are the Renewer's.
func (r *Registry) Hold(ctx context.Context, key tokenbroker.Key) error {
	return r.hold(ctx, key.HolderDigest(), r.duration()/2)
}

func (r *Registry) hold(ctx context.Context, digest string, fresh time.Duration) error {
	now := r.Clock.Now()
	r.mu.Lock()
	last, ok := r.renewed[digest]
	r.mu.Unlock()
	if ok && now.Sub(last) < fresh {
		return nil
	}
	holder := r.holderLabel()
	name := leaseName(digest, holder)
	l := &coordinationv1.Lease{}
	err := r.Reader.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, l)
	switch {
	case apierrors.IsNotFound(err):
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: name,
			Labels: map[string]string{LabelKey: digest[:40], LabelHolder: holder, LabelComponent: componentValue}}}
		r.fill(l, now)
		err = r.Writer.Create(ctx, l)
	case err == nil:
		r.fill(l, now)
		err = r.Writer.Update(ctx, l)
	}
	switch {
	case apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err):
		// Another reconcile of this shard (the Lease's name is the shard's) wrote it just now.
	case err != nil:
		return fmt.Errorf("holder registry: %w", err)
	default:
		r.writes.Add(1)
	}
	r.mu.Lock()
	if r.renewed == nil {
		r.renewed = map[string]time.Time{}
	}
	r.renewed[digest] = now
	r.mu.Unlock()
	return nil
}

func (r *Registry) fill(l *coordinationv1.Lease, now time.Time) {
	l.Spec.HolderIdentity = ptr.To(r.Identity)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(r.duration() / time.Second))
	l.Spec.RenewTime = &metav1.MicroTime{Time: now}
	if l.Spec.AcquireTime == nil {
		l.Spec.AcquireTime = &metav1.MicroTime{Time: now}
	}
}

// Others counts the other managers whose Lease for key is live: a revoke would end their token.
func (r *Registry) Others(ctx context.Context, key tokenbroker.Key) (int, error) {
	list := &coordinationv1.LeaseList{}
	if err := r.Reader.List(ctx, list, client.InNamespace(r.Namespace),
		client.MatchingLabels{LabelKey: key.HolderDigest()[:40]}); err != nil {
		return 0, fmt.Errorf("holder registry: %w", err)
	}
	now, n := r.Clock.Now(), 0
	for i := range list.Items {
		l := &list.Items[i]
		if l.Labels[LabelHolder] == r.holderLabel() || ptr.Deref(l.Spec.HolderIdentity, "") == r.Identity {
			continue
		}
		if live(l, now) {
			n++
		}
	}
	return n, nil
}

// live says whether l was renewed within its duration.
func live(l *coordinationv1.Lease, now time.Time) bool {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return false
	}
	return now.Before(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}

// Sync renews the Leases of the keys held (those not written within RenewEvery/2) and deletes this
// manager's Leases of keys no longer held. The Renewer calls it every RenewEvery.
func (r *Registry) Sync(ctx context.Context, held []tokenbroker.Key) error {
	keep := map[string]bool{}
	for _, k := range held {
		d := k.HolderDigest()
		keep[d[:40]] = true
		if err := r.hold(ctx, d, r.renewEvery()/2); err != nil {
			return err
		}
	}
	list := &coordinationv1.LeaseList{}
	if err := r.Reader.List(ctx, list, client.InNamespace(r.Namespace), client.MatchingLabels{LabelHolder: r.holderLabel()}); err != nil {
		return fmt.Errorf("holder registry: %w", err)
	}
	for i := range list.Items {
		l := &list.Items[i]
		d := l.Labels[LabelKey]
		if keep[d] {
			continue
		}
		if err := r.Writer.Delete(ctx, l, client.Preconditions{ResourceVersion: &l.ResourceVersion}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("holder registry: %w", err)
		}
		r.writes.Add(1)
		r.forget(d)
	}
	return nil
}

// forget drops the record of the Lease whose label is d (the first 40 digits of a digest).
func (r *Registry) forget(d string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for full := range r.renewed {
		if full[:40] == d {
			delete(r.renewed, full)
		}
	}
}
