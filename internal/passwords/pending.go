// Package passwords keeps the UWS passwords Verizon chose in a reset until they are stored in their
// credentials Secret. The reset's answer is the only copy of the account's new password: if the write
// fails (the API server is briefly unavailable), the password must survive in memory and be written
// before anything else is done with that account.
package passwords

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Pending is one reset's outcome: the new password and when the reset happened.
type Pending struct {
	Password string
	ResetAt  time.Time
}

// Store holds pending passwords by credentials Secret. The zero value is not usable; use NewStore.
type Store struct {
	mu sync.Mutex
	m  map[types.NamespacedName]Pending
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{m: map[types.NamespacedName]Pending{}} }

// Get returns the password pending for the credentials Secret k.
func (s *Store) Get(k types.NamespacedName) (Pending, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok
}

// Put records a reset's new password for k, replacing an older one (which the reset spent).
func (s *Store) Put(k types.NamespacedName, v Pending) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
}

// Stored forgets k's pending password once password has landed, unless a newer one replaced it.
func (s *Store) Stored(k types.NamespacedName, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[k].Password == password {
		delete(s.m, k)
	}
}
