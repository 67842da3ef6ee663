// Package refreshes remembers, in memory, the CloudAuthorization refreshes this process started:
// which refresh marker it wrote into the Secret and how the request ended; and the tokens of a code
// exchange (internal/callback) the Secret could not take yet.
//
// The marker (v1alpha1.RefreshStartedAnnotation) is the durable half: found by a process that knows
// nothing of it, it means a refresh token may have been spent without its answer being stored, and the
// grant is given up rather than risk a reuse. But the process that wrote the marker knows more. When its
// request was answered without rotating the token (a 503, a refusal) and only the marker clear failed
// (an API blip, a conflict), the token in the Secret is intact: the marker is cleared later instead of
// costing a consent (issue 8 scenario 8). When the answer carried new tokens that could not be stored
// yet, they wait here and are stored before anything else. Entries are keyed by object UID and marker,
// so a Secret rewritten since (a new consent, a person's bootstrap) is never mistaken for ours.
//
// A code exchange's answer is the same kind of debt: the code is spent, the tokens exist nowhere else.
// When the callback cannot write them it leaves them here (Exchanged, no marker) and the reconciler
// stores them on its next passes, before anything else, for as long as the process lives.
package refreshes

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/credops/thingspace-operator/internal/cloudapi"
)

// Outcome is how a refresh this process started ended, as far as it knows.
type Outcome int

const (
	// Sent: the marker is written and the request may be out; no answer yet.
	Sent Outcome = iota + 1
	// NotRotated: the refresh token was not spent: the request was never sent, or it was answered
	// with an error that rotates nothing (transient failure, refusal). The marker may be cleared.
	NotRotated
	// Rotated: the answer carried new tokens (Entry.Tokens), not stored yet.
	Rotated
	// Lost: the request got no usable answer; the token may have been rotated. Only the marker's
	// bound or a reauthorization ends this.
	Lost
	// Exchanged: a code exchange's tokens (Entry.Tokens) the callback could not store; no marker.
	Exchanged
)

func (o Outcome) String() string {
	switch o {
	case Sent:
		return "Sent"
	case NotRotated:
		return "NotRotated"
	case Rotated:
		return "Rotated"
	case Lost:
		return "Lost"
	case Exchanged:
		return "Exchanged"
	}
	return "Unknown"
}

// Entry is one object's refresh.
type Entry struct {
	// Marker is the value of the marker this refresh wrote.
	Marker  string
	Outcome Outcome
	// Tokens, Issued and ExpiresAt are the answer of a Rotated refresh or of an Exchanged code
	// (ExpiresAt zero: no usable access token, the refresh token alone).
	Tokens    cloudapi.Tokens
	Issued    time.Time
	ExpiresAt time.Time
}

// Store holds at most one entry per object (one refresh at a time per CloudAuthorization). The zero
// value is not usable; use New.
type Store struct {
	mu sync.Mutex
	m  map[types.UID]Entry
}

// New returns an empty store.
func New() *Store { return &Store{m: map[types.UID]Entry{}} }

// Wrote records that marker was written for uid and its refresh is about to be sent.
func (s *Store) Wrote(uid types.UID, marker string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[uid] = Entry{Marker: marker, Outcome: Sent}
}

// Ended records how the refresh of marker ended (NotRotated or Lost); it does nothing when uid's entry
// is about another marker.
func (s *Store) Ended(uid types.UID, marker string, o Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[uid]; ok && e.Marker == marker {
		e.Outcome = o
		s.m[uid] = e
	}
}

// Answered records the new tokens the refresh of marker obtained, to be stored.
func (s *Store) Answered(uid types.UID, marker string, tokens cloudapi.Tokens, issued, expiresAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[uid] = Entry{Marker: marker, Outcome: Rotated, Tokens: tokens, Issued: issued, ExpiresAt: expiresAt}
}

// Exchanged records the tokens of a code exchange for uid, to be stored. They replace whatever uid's
// entry was about: a consent supersedes any refresh of the grant before it.
func (s *Store) Exchanged(uid types.UID, tokens cloudapi.Tokens, issued, expiresAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[uid] = Entry{Outcome: Exchanged, Tokens: tokens, Issued: issued, ExpiresAt: expiresAt}
}

// Stored drops uid's entry once the answer e it was is in the Secret; it does nothing when the entry
// has changed since e was read (another answer arrived meanwhile and still has to be stored).
func (s *Store) Stored(uid types.UID, e Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.m[uid]; ok && cur.Outcome == e.Outcome && cur.Marker == e.Marker && cur.Issued.Equal(e.Issued) {
		delete(s.m, uid)
	}
}

// Get returns uid's entry.
func (s *Store) Get(uid types.UID) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[uid]
	return e, ok
}

// Lookup returns uid's entry when it is about marker.
func (s *Store) Lookup(uid types.UID, marker string) (Entry, bool) {
	e, ok := s.Get(uid)
	return e, ok && e.Marker == marker
}

// Forget drops uid's entry: its marker is gone from the Secret (stored, cleared, or replaced).
func (s *Store) Forget(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, uid)
}

// ForgetMarker drops uid's entry only when it is about marker.
func (s *Store) ForgetMarker(uid types.UID, marker string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[uid]; ok && e.Marker == marker {
		delete(s.m, uid)
	}
}

// Len is the number of entries (for tests and metrics).
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
