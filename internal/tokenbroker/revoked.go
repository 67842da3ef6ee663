package tokenbroker

import (
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/credops/thingspace-operator/internal/upstream/oauth"
)

// The tokens this process revoked (issue 8 scenario 9): never handed out or seeded again, never
// revoked twice, and who revoked them is told to the other holders.

// Revocation says who revoked a token through the broker, and why ("refresh requested", ...).
type Revocation struct {
	By  types.NamespacedName
	Why string
}

type revokedToken struct {
	key   Key
	token string
}

type revocation struct {
	Revocation
	until time.Time
}

// maxRevokedKept bounds the revoked set; past it (after the expired ones) an arbitrary half goes. A
// process revokes a handful of tokens per key per hour; this is for the pathological case.
const maxRevokedKept = 4096

// RevokedBy says whether this process revoked tok of key, and who did and why.
func (b *Broker) RevokedBy(key Key, tok string) (Revocation, bool) {
	if tok == "" {
		return Revocation{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.revoked[revokedToken{key, tok}]
	return r.Revocation, ok
}

func (b *Broker) isRevoked(key Key, tok string) bool {
	_, ok := b.RevokedBy(key, tok)
	return ok
}

// recordRevoked remembers that who revoked tok of key, until it would have expired (expires, when the
// broker knows it; the longest lifetime believed otherwise).
func (b *Broker) recordRevoked(key Key, tok string, expires time.Time, r Revocation) {
	now := b.clock.Now()
	if expires.IsZero() || expires.Before(now) {
		expires = now.Add(oauth.MaxExpiresIn)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, v := range b.revoked {
		if !now.Before(v.until) {
			delete(b.revoked, k)
		}
	}
	if len(b.revoked) >= maxRevokedKept {
		n := 0
		for k := range b.revoked { // map order: an arbitrary half
			delete(b.revoked, k)
			if n++; n >= maxRevokedKept/2 {
				break
			}
		}
	}
	b.revoked[revokedToken{key, tok}] = revocation{Revocation: r, until: expires}
}
