package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// statusMemory remembers the status each object was last given by this process.
//
// A reconcile reads its object from the informer cache, which may not show the status this process
// wrote a moment ago: our own Secret write wakes the next reconcile before the status patch comes back
// through the watch. Deciding from that stale status acts twice on one thing (a second revoke for one
// refresh request, a second login, a second password reset). The operator is the only writer of
// status, so the status it last wrote is the truth while it runs; after a restart the API's copy is.
// Entries are keyed by UID, so a deleted and recreated object never inherits one.
type statusMemory[S any] struct {
	mu sync.Mutex
	m  map[types.NamespacedName]remembered[S]
}

type remembered[S any] struct {
	uid    types.UID
	status S
}

func newStatusMemory[S any]() *statusMemory[S] {
	return &statusMemory[S]{m: map[types.NamespacedName]remembered[S]{}}
}

// get returns the remembered status of the object who with uid, or fallback (the cached status).
func (s *statusMemory[S]) get(who types.NamespacedName, uid types.UID, fallback S) S {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.m[who]; ok && r.uid == uid {
		return r.status
	}
	return fallback
}

// put remembers status as written for the object who with uid.
func (s *statusMemory[S]) put(who types.NamespacedName, uid types.UID, status S) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[who] = remembered[S]{uid: uid, status: status}
}

// forget drops who, when its object is gone.
func (s *statusMemory[S]) forget(who types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, who)
}
