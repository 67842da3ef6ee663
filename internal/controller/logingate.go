package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
)

// Verizon locks a UWS username after 5 consecutive failed logins, until its support unlocks it. The
// gate is the operator's guard against ever getting there, shared by every M2MSession of a username.
const (
	// maxFailuresPerUsername stops automatic logins for a username after this many consecutive failures.
	maxFailuresPerUsername = 2
	// hardFailureCap stops even requested logins one short of Verizon's lock.
	hardFailureCap = 4
)

// loginGate serialises logins per username and remembers failures, so that sessions sharing a username
// cannot together burn through its five attempts, and a password that failed is never sent again.
type loginGate struct {
	mu sync.Mutex
	m  map[string]*gateEntry
}

type gateEntry struct {
	login    sync.Mutex // held across one login call
	failures int
	failed   map[string]bool // digests of passwords the platform refused
}

func newLoginGate() *loginGate { return &loginGate{m: map[string]*gateEntry{}} }

// gateKey identifies a username at an endpoint.
func gateKey(endpoint, username string) string { return endpoint + "\x00" + username }

// passwordDigest is how the gate remembers a password: never the password itself.
func passwordDigest(username, password string) string {
	sum := sha256.Sum256([]byte(username + "\x00" + password))
	return hex.EncodeToString(sum[:])
}

func (g *loginGate) entry(key string) *gateEntry {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.entryLocked(key)
}

func (g *loginGate) entryLocked(key string) *gateEntry {
	e, ok := g.m[key]
	if !ok {
		e = &gateEntry{failed: map[string]bool{}}
		g.m[key] = e
	}
	return e
}

// Acquire takes the username's login lock; call the returned function when the login is decided.
func (g *loginGate) Acquire(key string) func() {
	e := g.entry(key)
	e.login.Lock()
	return e.login.Unlock
}

// Allow says whether a login with this password may be sent now, and why not. deliberate is a person's
// act (the refresh annotation, or changing credentials the platform refused), which may pass the
// automatic limit but never the hard cap.
func (g *loginGate) Allow(key, digest string, deliberate bool) (bool, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.m[key]
	if e == nil {
		return true, ""
	}
	switch {
	case e.failures >= hardFailureCap:
		return false, "the username has failed to log in 4 times in a row; one more locks it until Verizon support unlocks it. Verify the password in ThingSpace Manage, then recreate the M2MSession"
	case e.failed[digest]:
		return false, "the platform already refused this password for this username; update the credentials Secret"
	case e.failures >= maxFailuresPerUsername && !deliberate:
		return false, "the username has failed to log in twice in a row; the operator will not try again by itself (5 failures lock it). Fix this session's credentials Secret if the platform refused it, or set the refresh-requested annotation to try once more"
	}
	return true, ""
}

// Refused reports whether the platform already refused this password for the username.
func (g *loginGate) Refused(key, digest string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.m[key]
	return e != nil && e.failed[digest]
}

// Failed records a refused login.
func (g *loginGate) Failed(key, digest string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entryLocked(key)
	e.failures++
	e.failed[digest] = true
}

// Succeeded resets the username's count: the platform resets its own on a successful login.
func (g *loginGate) Succeeded(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.m[key]; e != nil {
		e.failures = 0
		clear(e.failed)
	}
}

// Seed restores what a session's status remembers after a restart: its failures, and, while the
// credentials Secret is still the one that was refused, that password. Idempotent.
func (g *loginGate) Seed(key string, failures int, digest string) {
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
func (g *loginGate) Failures(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.m[key]; e != nil {
		return e.failures
	}
	return 0
}
