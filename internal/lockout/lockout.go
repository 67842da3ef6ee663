// Package lockout guards UWS usernames against Verizon's lockout: five consecutive failed logins lock a
// username until Verizon support unlocks it, whichever session (or person) sent them.
//
// One Gate per process is shared by every M2MSession. It serialises the logins of a username, counts the
// username's consecutive failures as the platform does (a success resets it) and remembers which
// passwords the platform refused, so a refused password is never sent again. The operator stops logging
// in by itself after AutomaticLimit failures and refuses even a person's request at HardCap, one short
// of the lock.
package lockout

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
)

// Verizon locks a UWS username after 5 consecutive failed logins, until its support unlocks it. The
// gate is the operator's guard against ever getting there, shared by every M2MSession of a username.
const (
	// AutomaticLimit stops automatic logins for a username after this many consecutive failures.
	AutomaticLimit = 2
	// HardCap stops even requested logins one short of Verizon's lock.
	HardCap = 4
)

// Gate serialises logins per username and remembers failures, so that sessions sharing a username
// cannot together burn through its five attempts, and a password that failed is never sent again.
type Gate struct {
	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	login    sync.Mutex // held across one login call
	failures int
	failed   map[string]bool // digests of passwords the platform refused
}

// New returns an empty gate.
func New() *Gate { return &Gate{m: map[string]*entry{}} }

// Key identifies a username at an endpoint.
func Key(endpoint, username string) string { return endpoint + "\x00" + username }

// Digest is how the gate remembers a password: never the password itself.
func Digest(username, password string) string {
	sum := sha256.Sum256([]byte(username + "\x00" + password))
	return hex.EncodeToString(sum[:])
}

func (g *Gate) entry(key string) *entry {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.entryLocked(key)
}

func (g *Gate) entryLocked(key string) *entry {
	e, ok := g.m[key]
	if !ok {
		e = &entry{failed: map[string]bool{}}
		g.m[key] = e
	}
	return e
}

// Acquire takes the username's login lock; call the returned function when the login is decided.
func (g *Gate) Acquire(key string) func() {
	e := g.entry(key)
	e.login.Lock()
	return e.login.Unlock
}

// Allow says whether a login with this password may be sent now, and why not. deliberate is a person's
// act (the refresh annotation, or changing credentials the platform refused), which may pass the
// automatic limit but never the hard cap.
func (g *Gate) Allow(key, digest string, deliberate bool) (bool, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.m[key]
	if e == nil {
		return true, ""
	}
	switch {
	case e.failures >= HardCap:
		return false, "the username has failed to log in 4 times in a row; one more locks it until Verizon support unlocks it. Verify the password in ThingSpace Manage, then recreate the M2MSession"
	case e.failed[digest]:
		return false, "the platform already refused this password for this username; update the credentials Secret"
	case e.failures >= AutomaticLimit && !deliberate:
		return false, "the username has failed to log in twice in a row; the operator will not try again by itself (5 failures lock it). Fix this session's credentials Secret if the platform refused it, or set the refresh-requested annotation to try once more"
	}
	return true, ""
}

// Refused reports whether the platform already refused this password for the username.
func (g *Gate) Refused(key, digest string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.m[key]
	return e != nil && e.failed[digest]
}

// Failed records a refused login.
func (g *Gate) Failed(key, digest string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entryLocked(key)
	e.failures++
	e.failed[digest] = true
}

// Succeeded resets the username's count: the platform resets its own on a successful login.
func (g *Gate) Succeeded(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.m[key]; e != nil {
		e.failures = 0
		clear(e.failed)
	}
}

// Seed restores what a session's status remembers after a restart: its failures, and, while the
// credentials Secret is still the one that was refused, that password. Idempotent.
func (g *Gate) Seed(key string, failures int, digest string) {
	if failures <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entryLocked(key)
	e.failures = max(e.failures, failures)
	if digest != "" {
		e.failed[digest] = true
	}
}

// Failures reports the username's consecutive failures as the gate knows them.
func (g *Gate) Failures(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.m[key]; e != nil {
		return e.failures
	}
	return 0
}
