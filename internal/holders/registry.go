// Package holders is the registry through which managers of one cluster (the shards of a fleet) tell
// each other which ThingSpace app keys they hold a token of.
//
// ThingSpace keeps one active token per key: two shards whose objects use the same key share it, and a
// revoke by one ends it for the other, which has no way to know (its broker, internal/tokenbroker,
// sees only its own process). So every manager keeps coordination.k8s.io Leases in one namespace all
// of them share: a heartbeat of its own (holderIdentity its shard, i.e. its leader-election ID: the
// replicas of one shard are one holder), renewed every RenewEvery, and a Lease per key it holds, named
// and labelled by the key's holder digest (tokenbroker.Key.HolderDigest: neither the key nor its
// secret) and by the shard, written once. Before revoking, a manager asks whether another shard whose
// heartbeat is live holds the key; if so it does not revoke.
//
// It costs no upstream call and few API writes: a key's Lease is created when the shard first holds
// the key and deleted (by the Renewer) once it holds it no more; a restart rewrites none (one list finds
// them); the heartbeat is one write per shard per RenewEvery, however many keys. The check before a
// revoke is two lists. A manager that dies stops its heartbeat: after Duration the others no longer
// count its keys. Until then they only forgo revokes (renewBefore becomes renewal at expiry), which is
// the safe side.
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
	// LabelKey, on a key's Lease, is the first 40 hex digits of the key's holder digest (a label value
	// is at most 63).
	LabelKey = "thingspace.credops.io/holder-key"
	// LabelHolder is a digest of the holder's identity, on its heartbeat and its keys' Leases.
	LabelHolder = "thingspace.credops.io/holder"
	// LabelComponent marks the Leases as the registry's: holder-registry on keys' Leases,
	// holder-heartbeat on heartbeats.
	LabelComponent = "app.kubernetes.io/component"
	componentKey   = "holder-registry"
	componentBeat  = "holder-heartbeat"
)

// Defaults of Registry.
const (
	DefaultRenewEvery = 2 * time.Minute
	// DefaultDuration outlives four missed heartbeats.
	DefaultDuration = 5 * DefaultRenewEvery
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
	// RenewEvery and Duration (of the heartbeat) default to DefaultRenewEvery and DefaultDuration.
	RenewEvery, Duration time.Duration

	mu sync.Mutex
	// known holds the label digests of the keys whose Lease this shard has; primed from the API once.
	known  map[string]bool
	primed bool
	// beat is when this process last wrote the heartbeat.
	beat   time.Time
	writes atomic.Int64
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

func (r *Registry) holderLabel() string {
	sum := sha256.Sum256([]byte("thingspace-operator/holder-id/v1\x00" + r.Identity))
	return hex.EncodeToString(sum[:])[:16]
}

func heartbeatName(holder string) string { return "tsop-holder-" + holder }

func keyLeaseName(d, holder string) string { return "tsop-holder-" + d + "-" + holder }

// label is the part of a key's holder digest its Leases are labelled with.
func label(key tokenbroker.Key) string { return key.HolderDigest()[:40] }

// Hold records that this manager holds key's token: the key's Lease is created the first time, and the
// heartbeat written if this process has not written it within half its Duration (the Renewer keeps it
// otherwise). Calling it on every reconcile costs nothing after that.
func (r *Registry) Hold(ctx context.Context, key tokenbroker.Key) error {
	if err := r.prime(ctx); err != nil {
		return err
	}
	if err := r.heartbeat(ctx, r.duration()/2); err != nil {
		return err
	}
	return r.ensureKey(ctx, label(key))
}

// ensureKey creates the Lease of the key labelled d unless this shard is known to have it.
func (r *Registry) ensureKey(ctx context.Context, d string) error {
	r.mu.Lock()
	done := r.known[d]
	r.mu.Unlock()
	if done {
		return nil
	}
	holder := r.holderLabel()
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: keyLeaseName(d, holder),
		Labels: map[string]string{LabelKey: d, LabelHolder: holder, LabelComponent: componentKey}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(r.Identity), AcquireTime: &metav1.MicroTime{Time: r.Clock.Now()}}}
	switch err := r.Writer.Create(ctx, l); {
	case apierrors.IsAlreadyExists(err):
		// Another reconcile of this shard (the name is the shard's) wrote it just now.
	case err != nil:
		return fmt.Errorf("holder registry: %w", err)
	default:
		r.writes.Add(1)
	}
	r.mu.Lock()
	r.known[d] = true
	r.mu.Unlock()
	return nil
}

// prime learns, with one list, the keys' Leases this shard already has (a restart rewrites none) and
// when its heartbeat was last renewed: a new leader taking over a heartbeat renewed within the
// freshness Hold asks for writes none in front of its first pass (the Renewer renews it as it starts,
// beside the reconcilers). Before that, each reconcile of a new leader wrote the heartbeat (a Get and
// an Update each, until the first had) ahead of its first upstream call.
func (r *Registry) prime(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.primed {
		return nil
	}
	list := &coordinationv1.LeaseList{}
	if err := r.Reader.List(ctx, list, client.InNamespace(r.Namespace), client.MatchingLabels{LabelHolder: r.holderLabel()}); err != nil {
		return fmt.Errorf("holder registry: %w", err)
	}
	r.known = map[string]bool{}
	beat := heartbeatName(r.holderLabel())
	for i := range list.Items {
		l := &list.Items[i]
		switch {
		case l.Labels[LabelComponent] == componentKey:
			r.known[l.Labels[LabelKey]] = true
		case l.Name == beat && l.Labels[LabelComponent] == componentBeat && l.Spec.RenewTime != nil &&
			ptr.Deref(l.Spec.HolderIdentity, "") == r.Identity && l.Spec.RenewTime.After(r.beat):
			r.beat = l.Spec.RenewTime.Time
		}
	}
	r.primed = true
	return nil
}

// heartbeat writes this shard's heartbeat unless this process wrote it within fresh.
func (r *Registry) heartbeat(ctx context.Context, fresh time.Duration) error {
	now := r.Clock.Now()
	r.mu.Lock()
	last := r.beat
	r.mu.Unlock()
	if !last.IsZero() && now.Sub(last) < fresh {
		return nil
	}
	holder := r.holderLabel()
	l := &coordinationv1.Lease{}
	err := r.Reader.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: heartbeatName(holder)}, l)
	switch {
	case apierrors.IsNotFound(err):
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: heartbeatName(holder),
			Labels: map[string]string{LabelHolder: holder, LabelComponent: componentBeat}}}
		r.fill(l, now)
		err = r.Writer.Create(ctx, l)
	case err == nil:
		r.fill(l, now)
		err = r.Writer.Update(ctx, l)
	}
	switch {
	case apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err):
		// Another reconcile of this shard wrote it just now.
	case err != nil:
		return fmt.Errorf("holder registry: %w", err)
	default:
		r.writes.Add(1)
	}
	r.mu.Lock()
	r.beat = now
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

// Others counts the other shards that hold key and whose heartbeat is live: a revoke would end their
// token.
func (r *Registry) Others(ctx context.Context, key tokenbroker.Key) (int, error) {
	keys := &coordinationv1.LeaseList{}
	if err := r.Reader.List(ctx, keys, client.InNamespace(r.Namespace), client.MatchingLabels{LabelKey: label(key)}); err != nil {
		return 0, fmt.Errorf("holder registry: %w", err)
	}
	me := r.holderLabel()
	holding := map[string]bool{}
	for i := range keys.Items {
		if h := keys.Items[i].Labels[LabelHolder]; h != me {
			holding[h] = true
		}
	}
	if len(holding) == 0 {
		return 0, nil
	}
	beats := &coordinationv1.LeaseList{}
	if err := r.Reader.List(ctx, beats, client.InNamespace(r.Namespace), client.MatchingLabels{LabelComponent: componentBeat}); err != nil {
		return 0, fmt.Errorf("holder registry: %w", err)
	}
	now, n := r.Clock.Now(), 0
	for i := range beats.Items {
		if b := &beats.Items[i]; holding[b.Labels[LabelHolder]] && live(b, now) {
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

// Sync renews the heartbeat (unless written within RenewEvery/2) and deletes this shard's Leases of
// keys no longer held. The Renewer calls it every RenewEvery.
func (r *Registry) Sync(ctx context.Context, held []tokenbroker.Key) error {
	if err := r.prime(ctx); err != nil {
		return err
	}
	if err := r.heartbeat(ctx, r.renewEvery()/2); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, k := range held {
		keep[label(k)] = true
	}
	list := &coordinationv1.LeaseList{}
	if err := r.Reader.List(ctx, list, client.InNamespace(r.Namespace),
		client.MatchingLabels{LabelHolder: r.holderLabel(), LabelComponent: componentKey}); err != nil {
		return fmt.Errorf("holder registry: %w", err)
	}
	listed := map[string]bool{}
	for i := range list.Items {
		l := &list.Items[i]
		d := l.Labels[LabelKey]
		listed[d] = true
		if keep[d] {
			continue
		}
		// Forget it first: a Hold racing the delete creates it again.
		r.mu.Lock()
		delete(r.known, d)
		r.mu.Unlock()
		if err := r.Writer.Delete(ctx, l, client.Preconditions{ResourceVersion: &l.ResourceVersion}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("holder registry: %w", err)
		}
		r.writes.Add(1)
	}
	// A held key whose Lease is missing (deleted by hand, or by a delete that raced its Hold) gets it
	// back.
	for d := range keep {
		if !listed[d] {
			r.mu.Lock()
			delete(r.known, d)
			r.mu.Unlock()
			if err := r.ensureKey(ctx, d); err != nil {
				return err
			}
		}
	}
	return nil
}
