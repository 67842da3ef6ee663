package secrets

import (
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Expectations, as the ReplicaSet controller keeps them: the Writer remembers each Secret it wrote (as
// stored) or deleted until the caches show that version, and until then Get answers from what it
// remembers. A reconcile right after a write (its status patch's event brings one at once) would
// otherwise read a cache without the write and write again: 1.9 % of 10,000 new ThingSpaceApps had
// their Secret created twice (refused with AlreadyExists, then read past the cache) in `make bench`.
//
// Each entry is dropped when both caches show its version or a newer one (someone wrote after us: the
// caches know better), when a write from it fails (the API server knows better), and beyond
// maxExpectations the oldest goes first, which only costs the read past the caches it saved.

// maxExpectations bounds the remembered Secrets: entries live for the caches' lag, milliseconds, and
// each holds one Secret.
const maxExpectations = 1024

// expectation is one remembered write.
type expectation struct {
	seq uint64 // which queued entry is this one's
	uid types.UID
	// rv is the resourceVersion the write returned; for a delete, the one deleted.
	rv uint64
	// stored is the Secret as written; nil for a delete.
	stored *corev1.Secret
}

// expectations are a Writer's remembered writes by Secret.
type expectations struct {
	mu    sync.Mutex
	m     map[types.NamespacedName]expectation
	order []queued // oldest first; an entry rewritten or dropped since leaves a stale one here
	seq   uint64
}

type queued struct {
	key types.NamespacedName
	seq uint64
}

// cacheView is how far a cache is with a remembered write.
type cacheView int

const (
	viewBehind   cacheView = iota // the cache has not seen the write yet
	viewCaughtUp                  // the cache shows exactly the write
	viewAhead                     // the cache shows something newer, or cannot be compared
)

// view compares a cache's copy (nil: none) with e.
func (e expectation) view(cached metav1.Object) cacheView {
	if e.stored == nil { // a delete
		switch {
		case cached == nil:
			return viewCaughtUp
		case cached.GetUID() == e.uid:
			return viewBehind
		}
		return viewAhead
	}
	if cached == nil {
		return viewBehind
	}
	// Resource versions are etcd revisions, comparable across objects of a resource; one that is not a
	// number is never taken for stale.
	rv, err := strconv.ParseUint(cached.GetResourceVersion(), 10, 64)
	switch {
	case err != nil || rv > e.rv:
		return viewAhead
	case rv == e.rv:
		return viewCaughtUp
	}
	return viewBehind
}

func (x *expectations) get(key types.NamespacedName) (expectation, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.m[key]
	return e, ok
}

// wrote remembers stored as written; a version that is not a number is not remembered.
func (x *expectations) wrote(stored *corev1.Secret) {
	rv, err := strconv.ParseUint(stored.ResourceVersion, 10, 64)
	key := types.NamespacedName{Namespace: stored.Namespace, Name: stored.Name}
	if err != nil {
		x.forget(key)
		return
	}
	kept := stored.DeepCopy()
	_, _ = KeepOwnManagedFields(kept) // as the cache keeps it
	x.put(key, expectation{uid: stored.UID, rv: rv, stored: kept})
}

// deleted remembers that the Secret s (as it was when deleted) is gone.
func (x *expectations) deleted(s *corev1.Secret) {
	rv, _ := strconv.ParseUint(s.ResourceVersion, 10, 64)
	x.put(types.NamespacedName{Namespace: s.Namespace, Name: s.Name}, expectation{uid: s.UID, rv: rv})
}

func (x *expectations) put(key types.NamespacedName, e expectation) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil {
		x.m = map[types.NamespacedName]expectation{}
	}
	x.seq++
	e.seq = x.seq
	x.m[key] = e
	x.order = append(x.order, queued{key, e.seq})
	for len(x.m) > maxExpectations {
		x.drop(x.order[0])
		x.order = x.order[1:]
	}
	if len(x.order) > 2*maxExpectations { // mostly stale entries: keep the live ones only
		live := x.order[:0]
		for _, q := range x.order {
			if x.m[q.key].seq == q.seq {
				live = append(live, q)
			}
		}
		x.order = live
	}
}

// drop deletes q's entry unless it has been rewritten since.
func (x *expectations) drop(q queued) {
	if e, ok := x.m[q.key]; ok && e.seq == q.seq {
		delete(x.m, q.key)
	}
}

// forget drops the expectation of key.
func (x *expectations) forget(key types.NamespacedName) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.m, key)
	if len(x.m) == 0 {
		x.order = x.order[:0]
	}
}

// len is the number of remembered writes (tests).
func (x *expectations) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.m)
}
