// Package memo remembers, per object, the status a reconciler last decided and the status it last stored,
// and holds the one "record" step every remembering kind uses (see Statuses and Record).
package memo

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Statuses remembers, per object, the status this process last decided and the status it last
// Stored in the API server.
//
// A reconcile reads its object from the informer cache, which may not show the status this process
// wrote a moment ago: our own Secret write wakes the next reconcile before the status patch comes back
// through the watch. Deciding from that stale status acts twice on one thing (a second revoke for one
// refresh request, a second login, a second password reset). The same happens when a side effect
// succeeded and the status write that records it failed (issue 8 scenario 13). So the decided status is
// remembered before it is written, and the next pass decides from it whether or not the write landed;
// the stored one is the base the next write is computed against. The operator is the only writer of
// these statuses, so while it runs its memory is the truth; after a restart the API's copy is. Entries
// are keyed by UID, so a deleted and recreated object never inherits one.
//
// Once the cache shows the very write that stored the decided status (its resourceVersion, see
// Observed), the memory adds nothing the cache lacks: a Statuses that Follows the cache then keeps only
// a mark that this object was written, and reads its status from the cache when asked, since the pass
// asking may have read its object before the cache caught up (follow.go). Memory then holds a status
// only while its write is on its way, not for every object of the kind.
type Statuses[S any] struct {
	mu sync.Mutex
	m  map[types.NamespacedName]remembered[S]
	// current reads an object's status from the cache (Follow); nil: statuses are kept until Forget.
	current func(types.NamespacedName) (S, types.UID, bool)
}

// remembered holds both statuses by pointer, and one status once when what was stored is what was
// decided (the usual case). An entry with no decided status is a mark: this process wrote the
// object's status and the cache has shown that write (follow.go).
type remembered[S any] struct {
	uid     types.UID
	decided *S
	stored  *S // nil until a write of this process landed
	// storedRV is the resourceVersion the write of stored returned, seenRV the last one the cache
	// showed (the watch may bring a write before its response does); caught: the cache showed storedRV.
	storedRV, seenRV string
	caught           bool
	// marked: the entry was a mark before this decision (a pass that reads from it reads the cache).
	marked bool
}

func (r remembered[S]) isMark() bool { return r.decided == nil }

// New returns an empty memory.
func New[S any]() *Statuses[S] {
	return &Statuses[S]{m: map[types.NamespacedName]remembered[S]{}}
}

// Get returns the status last decided for the object who with uid, or fallback (the cached status).
func (s *Statuses[S]) Get(who types.NamespacedName, uid types.UID, fallback S) S {
	s.mu.Lock()
	r, ok := s.m[who]
	s.mu.Unlock()
	switch {
	case !ok || r.uid != uid:
		return fallback
	case r.isMark():
		return s.fresh(who, uid, fallback)
	}
	return *r.decided
}

// Decide remembers status as decided for the object who with uid, and returns what the API server holds
// as far as this process knows (fallback, the cached status, when it has stored nothing yet).
func (s *Statuses[S]) Decide(who types.NamespacedName, uid types.UID, status S, fallback S) S {
	s.mu.Lock()
	r, ok := s.m[who]
	if ok && r.uid == uid && r.isMark() {
		s.mu.Unlock()
		// What the server holds is what the cache holds now; fallback may be older.
		fallback = s.fresh(who, uid, fallback)
		s.mu.Lock()
		if r, ok = s.m[who]; ok && r.uid == uid && r.isMark() {
			r = remembered[S]{uid: uid, marked: true}
		}
	}
	defer s.mu.Unlock()
	if !ok || r.uid != uid {
		r = remembered[S]{uid: uid}
	}
	r.decided = &status
	s.m[who] = r
	if r.stored != nil {
		return *r.stored
	}
	return fallback
}

// Stored records that status landed in the API server.
func (s *Statuses[S]) Stored(who types.NamespacedName, uid types.UID, status S) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.m[who]; ok && r.uid == uid {
		r.stored = &status
		s.m[who] = r
	}
}

// storedDecided records that the status last decided for who landed in the API server: written as
// resourceVersion rv, or, with rv "", found there already.
func (s *Statuses[S]) storedDecided(who types.NamespacedName, uid types.UID, rv string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[who]
	if !ok || r.uid != uid || r.isMark() {
		return
	}
	switch {
	case rv != "":
		r.stored, r.storedRV, r.caught = r.decided, rv, r.seenRV == rv
	case r.stored == nil && s.current != nil:
		// Nothing this process wrote is pending and the status read is the decided one: the
		// cache holds it (a mark if there was one, else nothing to remember).
		if r.marked {
			s.m[who] = remembered[S]{uid: uid}
		} else {
			delete(s.m, who)
		}
		return
	default:
		r.stored = r.decided
	}
	if r.caught && s.current != nil {
		r = remembered[S]{uid: uid}
	}
	s.m[who] = r
}

// Forget drops who, when its object is gone.
func (s *Statuses[S]) Forget(who types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, who)
}

// Record is the one "record" step of the kinds that remember their status: st is remembered as
// decided first, so the outcome of a side effect is never acted on twice even when the write fails, and
// it is written when it differs from what the API server holds. obj is the object as read (its status
// the cached one); withStatus returns a copy of obj carrying a given status. At most one write per pass,
// none when nothing changed.
func Record[S any](ctx context.Context, c client.Client, mem *Statuses[S], obj client.Object, cached, st S, withStatus func(S) client.Object) error {
	who, uid := client.ObjectKeyFromObject(obj), obj.GetUID()
	base := mem.Decide(who, uid, st, cached)
	if equality.Semantic.DeepEqual(base, st) {
		mem.storedDecided(who, uid, "")
		return nil
	}
	updated := withStatus(st)
	if err := c.Status().Patch(ctx, updated, client.MergeFrom(withStatus(base))); err != nil {
		return err
	}
	mem.storedDecided(who, uid, updated.GetResourceVersion())
	return nil
}
