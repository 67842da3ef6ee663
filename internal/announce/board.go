// Package announce carries a ThingSpaceApp's new token to the M2MSessions that use it as soon as the
// app's controller has it, instead of after the app's Secret write has come back through the watch.
//
// A session's Secret holds the app's token beside the session token. Following the app only through
// its Secret puts two API writes and a watch delay in a row between the upstream's answer and the
// session's Secret: under slow API writes the session's copy of a dead token outlived the app's own by
// a second or more (the chaos suite's avoidable seconds). The board lets both writes start together.
// It keeps an entry only for an app that some session uses, and only until that app's Secret in the
// cache shows the token (or the token expires).
package announce

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/credops/thingspace-operator/internal/tokenbroker"
)

// Board holds, per app, the last token its controller obtained and has not yet seen in its Secret.
// A nil *Board announces nothing and returns what it is given.
type Board struct {
	// wake is told of every announcement; false means no session uses the app, and nothing is kept.
	wake func(app types.NamespacedName) bool

	mu sync.Mutex
	m  map[types.NamespacedName]tokenbroker.Token
}

// New returns a board that calls wake with every announced app.
func New(wake func(app types.NamespacedName) bool) *Board {
	return &Board{wake: wake, m: map[types.NamespacedName]tokenbroker.Token{}}
}

// Announce records tok as app's newest token and wakes the app's sessions.
func (b *Board) Announce(app types.NamespacedName, tok tokenbroker.Token) {
	if b == nil || tok.AccessToken == "" {
		return
	}
	// Stored before the wake, so that a woken session finds it.
	b.mu.Lock()
	b.m[app] = tok
	b.mu.Unlock()
	if !b.wake(app) {
		b.mu.Lock()
		if b.m[app].AccessToken == tok.AccessToken {
			delete(b.m, app)
		}
		b.mu.Unlock()
	}
}

// Current returns the token a session of app should publish: the announced one while it is live and
// the app's Secret (held, as the cache shows it) does not hold it yet, held otherwise. An entry the
// Secret has caught up with, that is dead, or that a later token in the Secret superseded (another
// manager's write) is forgotten.
func (b *Board) Current(app types.NamespacedName, held tokenbroker.Token, now time.Time) tokenbroker.Token {
	if b == nil {
		return held
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.m[app]
	if !ok {
		return held
	}
	if a.AccessToken == held.AccessToken || !now.Before(a.ExpiresAt) || held.ExpiresAt.After(a.ExpiresAt) {
		delete(b.m, app)
		return held
	}
	return a
}

// Len is how many apps have an entry (for tests and the memory's accounting).
func (b *Board) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
