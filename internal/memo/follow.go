package memo

import "k8s.io/apimachinery/pkg/types"

// Following the cache: a status is kept only until the cache shows the write that stored it.
//
// The cache tells each object it holds (Observed, from the informer's event handler, which runs once the
// informer's store holds that version). When that is the resourceVersion of this process's last status
// write and nothing newer has been decided, the entry becomes a mark. A pass that finds a mark reads the
// status from the cache (current) instead of trusting its own copy of the object: it may have read that
// before the cache caught up, and the cache, which only moves forward, now holds at least that write.

// Follow makes s keep a status only until the cache shows it; current reads an object's status (a
// copy) and UID from that cache. Call it before the reconcilers start.
func (s *Statuses[S]) Follow(current func(types.NamespacedName) (S, types.UID, bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = current
}

// Observed tells s that the cache holds the object who with uid at resourceVersion rv.
func (s *Statuses[S]) Observed(who types.NamespacedName, uid types.UID, rv string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[who]
	if s.current == nil || !ok || r.uid != uid || r.isMark() {
		return
	}
	r.seenRV = rv
	if r.stored != nil && rv == r.storedRV {
		if r.stored == r.decided {
			s.m[who] = remembered[S]{uid: uid}
			return
		}
		r.caught = true // a newer decision is on its way: kept until it is stored
	}
	s.m[who] = r
}

// fresh is the cached status of who (fallback when the cache lacks it or holds another object).
func (s *Statuses[S]) fresh(who types.NamespacedName, uid types.UID, fallback S) S {
	s.mu.Lock()
	current := s.current
	s.mu.Unlock()
	if current == nil {
		return fallback
	}
	if st, got, ok := current(who); ok && got == uid {
		return st
	}
	return fallback
}

// Len is how many objects s holds a status of, marks aside (tests, memory).
func (s *Statuses[S]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.m {
		if !r.isMark() {
			n++
		}
	}
	return n
}
