// Package lockout guards UWS usernames against Verizon's lockout: five consecutive failed logins lock a
// username until Verizon support unlocks it, whichever session (or person) sent them.
//
// One Gate per process is shared by every M2MSession. It serialises the logins of a username, counts the
// username's consecutive failures as the platform does (a success of that username, from any session,
// resets it) and remembers which passwords the platform refused, so a refused password is never sent
// again. The operator stops logging in by itself after AutomaticLimit failures and refuses even a
// person's request at HardCap, one short of the lock.
//
// The count outlives a restart only through the sessions' statuses, and several sessions remember it.
// Each copy therefore carries when it was observed (Count.At), and the later observation wins: a stale
// copy in a session that was held back can never bring back failures a later success cleared.
package lockout

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

const (
	// AutomaticLimit stops automatic logins for a username after this many consecutive failures.
	AutomaticLimit = 2
	// HardCap stops even requested logins one short of Verizon's lock (5).
	HardCap = 4
)

// Count is a username's consecutive failed logins as observed at At: the time of the last failure, or of
// the success that reset the count. The zero At is older than any observation.
type Count struct {
	Failures int
	At       time.Time
}

// newer reports whether c was observed after o; at the same instant the higher count wins (a failure
// and a success in one second cannot be ordered, and over-counting only makes the gate more careful).
func (c Count) newer(o Count) bool {
	return c.At.After(o.At) || (c.At.Equal(o.At) && c.Failures > o.Failures)
}

// Gate is the operator's guard for every username it logs in with. The zero value is not usable; see New.
type Gate struct {
	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	login   sync.Mutex // held across one login call
	count   Count
	resetAt time.Time            // the last success seen: refusals observed before it are void
	refused map[string]time.Time // digests of passwords the platform refused, and when
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

func (g *Gate) entryLocked(key string) *entry {
	e, ok := g.m[key]
	if !ok {
		e = &entry{refused: map[string]time.Time{}}
		g.m[key] = e
	}
	return e
}

// Acquire takes the username's login lock; call the returned function when the login is decided.
func (g *Gate) Acquire(key string) func() {
	g.mu.Lock()
	e := g.entryLocked(key)
	g.mu.Unlock()
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
	case e.count.Failures >= HardCap:
		return false, "the username has failed to log in 4 times in a row; one more locks it until Verizon support unlocks it. Verify the password in ThingSpace Manage, then recreate the M2MSession"
	case e.isRefused(digest):
		return false, "the platform already refused this password for this username; update the credentials Secret"
	case e.count.Failures >= AutomaticLimit && !deliberate:
		return false, "the username has failed to log in twice in a row; the operator will not try again by itself (5 failures lock it). Fix this session's credentials Secret if the platform refused it, or set the refresh-requested annotation to try once more"
	}
	return true, ""
}

// Refused reports whether the platform refused this password for the username since its last success.
func (g *Gate) Refused(key, digest string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.m[key]
	return e != nil && e.isRefused(digest)
}

func (e *entry) isRefused(digest string) bool {
	_, ok := e.refused[digest]
	return ok
}

// Failed records a login the platform refused at at, and returns the username's new count.
func (g *Gate) Failed(key, digest string, at time.Time) Count {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entryLocked(key)
	e.count = Count{Failures: e.count.Failures + 1, At: latest(e.count.At, at)}
	e.refused[digest] = e.count.At
	return e.count
}

// Succeeded records a successful login at at: the platform resets the username's count, and so does the
// gate, for every session of the username.
func (g *Gate) Succeeded(key string, at time.Time) Count {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entryLocked(key)
	e.count = Count{At: latest(e.count.At, at)}
	e.resetAt = e.count.At
	clear(e.refused)
	return e.count
}

// Observe merges what a session's status remembers after a restart (or from before this pass): the
// username's count as observed then and, when the session's own password was refused and is still the
// one in its credentials Secret, that password. The later observation wins, so a copy older than a
// success changes nothing. Idempotent.
func (g *Gate) Observe(key string, c Count, refusedDigest string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entryLocked(key)
	if c.newer(e.count) {
		e.count = c
	}
	if c.Failures == 0 && c.At.After(e.resetAt) {
		// That observation is a success: refusals known from before it are void.
		e.resetAt = c.At
		for d, t := range e.refused {
			if t.Before(c.At) {
				delete(e.refused, d)
			}
		}
	}
	if refusedDigest != "" && c.Failures > 0 && !c.At.Before(e.resetAt) {
		if t, ok := e.refused[refusedDigest]; !ok || c.At.After(t) {
			e.refused[refusedDigest] = c.At
		}
	}
}

// Count reports the username's consecutive failures as the gate knows them.
func (g *Gate) Count(key string) Count {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.m[key]; e != nil {
		return e.count
	}
	return Count{}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
