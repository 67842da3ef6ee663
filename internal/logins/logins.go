// Package logins keeps the UWS logins this process made and could not yet publish. A login is a live
// session upstream: when the write that publishes it fails (the API server is down or slow), the
// retry must publish that session, not log in again, for every login opens another session and costs
// the platform's rate limits (the chaos suite saw bursts of 8 logins within a second while the API
// server was out).
package logins

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Login is one login's outcome, with what it was made with.
type Login struct {
	// Session is the session token.
	Session string
	// Bearer is the digest of the app token the login carried; Credentials the username and password's.
	Bearer, Credentials string
	// At is when the login was answered.
	At time.Time
}

// maxHeld bounds the logins kept: an entry lives only while its publication fails.
const maxHeld = 4096

// Unpublished holds the logins not yet published, by the UID of the session object. The zero value is
// ready to use.
type Unpublished struct {
	mu sync.Mutex
	m  map[types.UID]Login
}

// Put keeps l for the object uid until Forget, replacing an older login.
func (u *Unpublished) Put(uid types.UID, l Login) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[types.UID]Login{}
	}
	if _, ok := u.m[uid]; !ok && len(u.m) >= maxHeld {
		for k := range u.m { // any one: each is at worst one login made again
			delete(u.m, k)
			break
		}
	}
	u.m[uid] = l
}

// Usable returns the login kept for uid when it was made with the same app token and credentials and
// is younger than maxAge at now (the session then is still live: it was used within its idle
// timeout); a login that is not is forgotten.
func (u *Unpublished) Usable(uid types.UID, bearer, credentials string, now time.Time, maxAge time.Duration) (Login, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	l, ok := u.m[uid]
	if !ok {
		return Login{}, false
	}
	if l.Bearer != bearer || l.Credentials != credentials || now.Before(l.At) || now.Sub(l.At) >= maxAge {
		delete(u.m, uid)
		return Login{}, false
	}
	return l, true
}

// Forget drops the login kept for uid (published, or the object is gone).
func (u *Unpublished) Forget(uid types.UID) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.m, uid)
}
