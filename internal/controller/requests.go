package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// handledRequests remembers, per object, the last refresh-requested value acted on. Status records it
// too, but the cache that a reconcile reads may not show that status write yet when our own Secret
// write triggers the next reconcile, and acting twice on one request revokes twice. Status covers
// restarts; this covers the cache lag.
type handledRequests struct {
	mu sync.Mutex
	m  map[types.NamespacedName]string
}

func newHandledRequests() *handledRequests {
	return &handledRequests{m: map[types.NamespacedName]string{}}
}

// pending reports whether value is a refresh request not yet acted on for who.
func (h *handledRequests) pending(who types.NamespacedName, value, observed string) bool {
	if value == "" || value == observed {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m[who] != value
}

// done records that value was acted on for who.
func (h *handledRequests) done(who types.NamespacedName, value string) {
	if value == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.m[who] = value
}

// forget drops who, when its object is gone.
func (h *handledRequests) forget(who types.NamespacedName) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, who)
}
