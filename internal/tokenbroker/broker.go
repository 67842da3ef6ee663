// Package tokenbroker keeps one ThingSpace app token per app key in memory and serialises every
// upstream token call for that key.
//
// ThingSpace issues one token per key/secret pair: every client of the key gets the same token for the
// hour, and a revoke ends it for all of them. Several ThingSpaceApps may use the same key, so they must
// share what the platform hands out instead of each asking for it, and must never revoke a token another
// one has just fetched. The broker is that shared place: calls for one key go one at a time, a caller
// that finds a newer token than the one it holds takes it without an upstream call, and every other
// holder is told when the token changes.
package tokenbroker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/thingspace"
)

// Issuer is the part of the ThingSpace client the broker needs.
type Issuer interface {
	Token(ctx context.Context, creds thingspace.Credentials, scope string) (thingspace.Token, error)
	Revoke(ctx context.Context, creds thingspace.Credentials, token string) error
}

// Key identifies one platform token: an endpoint and a key/secret pair. The secret is kept only as a
// digest, so two objects with the same key but different secrets (one of them wrong) stay apart.
type Key struct {
	Endpoint  string
	ClientKey string
	digest    string
}

// NewKey returns the Key for creds at endpoint.
func NewKey(endpoint string, creds thingspace.Credentials) Key {
	sum := sha256.Sum256([]byte(creds.Key + "\x00" + creds.Secret))
	return Key{Endpoint: endpoint, ClientKey: creds.Key, digest: hex.EncodeToString(sum[:])}
}

// Token is an app token with the instants the operator keeps, in whole seconds.
type Token struct {
	AccessToken string
	TokenType   string
	IssuedAt    time.Time
	ExpiresAt   time.Time
}

// Result is the outcome of a call that may have gone upstream.
type Result struct {
	Token Token
	// Called is true when the upstream was asked.
	Called bool
	// RetryAt is set when the upstream answered with the token the caller wanted replaced: it has not
	// expired upstream yet, and asking again before RetryAt is pointless.
	RetryAt time.Time
}

// Broker shares tokens between the objects that use one key.
type Broker struct {
	clock  clock.PassiveClock
	notify func(types.NamespacedName)

	mu      sync.Mutex
	entries map[Key]*entry
	subs    map[types.NamespacedName]Key
}

type entry struct {
	mu      sync.Mutex // held across upstream calls: one call per key at a time
	tok     *Token
	sameTil time.Time       // a same-token answer came; don't ask again before this
	revoked map[string]bool // tokens this process revoked: never handed out again
	holders map[types.NamespacedName]bool
}

// New returns a broker. notify is called (from a goroutine of its own) with every holder of a key whose
// token changed, except the one that changed it.
func New(clk clock.PassiveClock, notify func(types.NamespacedName)) *Broker {
	return &Broker{clock: clk, notify: notify, entries: map[Key]*entry{}, subs: map[types.NamespacedName]Key{}}
}

// Subscribe records that who holds the token of key, moving it off any other key.
func (b *Broker) Subscribe(key Key, who types.NamespacedName) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.subs[who]; ok && old != key {
		b.dropLocked(old, who)
	}
	b.subs[who] = key
	e := b.entryLocked(key)
	e.holders[who] = true
}

// Unsubscribe forgets who; a key nobody holds is forgotten with it.
func (b *Broker) Unsubscribe(who types.NamespacedName) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if key, ok := b.subs[who]; ok {
		b.dropLocked(key, who)
		delete(b.subs, who)
	}
}

func (b *Broker) dropLocked(key Key, who types.NamespacedName) {
	if e, ok := b.entries[key]; ok {
		delete(e.holders, who)
		if len(e.holders) == 0 {
			delete(b.entries, key)
		}
	}
}

func (b *Broker) entryLocked(key Key) *entry {
	e, ok := b.entries[key]
	if !ok {
		e = &entry{revoked: map[string]bool{}, holders: map[types.NamespacedName]bool{}}
		b.entries[key] = e
	}
	return e
}

func (b *Broker) entry(key Key) *entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.entryLocked(key)
}

// Seed offers a token read back from a Secret (after a restart, say). The broker keeps it when it knows
// no valid token for the key or only one that expires earlier: for one key, the later expiry is the
// later issue. A token this process revoked is refused.
func (b *Broker) Seed(key Key, tok Token) {
	if tok.AccessToken == "" {
		return
	}
	e := b.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.revoked[tok.AccessToken] || !b.clock.Now().Before(tok.ExpiresAt) {
		return
	}
	if e.tok == nil || tok.ExpiresAt.After(e.tok.ExpiresAt) {
		t := tok
		e.tok = &t
	}
}

// Current returns the valid token the broker knows for key.
func (b *Broker) Current(key Key) (Token, bool) {
	e := b.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tok == nil || !b.clock.Now().Before(e.tok.ExpiresAt) {
		return Token{}, false
	}
	return *e.tok, true
}

// Fetch returns a valid token other than stale, asking the upstream only when the broker has none.
// When the upstream still answers with stale, the Result says so through RetryAt.
func (b *Broker) Fetch(ctx context.Context, key Key, who types.NamespacedName, iss Issuer, creds thingspace.Credentials, scope, stale string) (Result, error) {
	e := b.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := b.clock.Now()
	if e.tok != nil && now.Before(e.tok.ExpiresAt) && e.tok.AccessToken != stale {
		return Result{Token: *e.tok}, nil
	}
	if e.tok != nil && e.tok.AccessToken == stale && now.Before(e.sameTil) {
		return Result{Token: *e.tok, RetryAt: e.sameTil}, nil
	}
	return b.issueLocked(ctx, key, e, who, iss, creds, scope, stale)
}

// Rotate replaces old with a new token: it revokes old and asks for another, unless another holder has
// rotated it already, in which case the newer token is returned without an upstream call.
func (b *Broker) Rotate(ctx context.Context, key Key, who types.NamespacedName, iss Issuer, creds thingspace.Credentials, scope, old string) (Result, error) {
	e := b.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tok != nil && b.clock.Now().Before(e.tok.ExpiresAt) && e.tok.AccessToken != old {
		return Result{Token: *e.tok}, nil
	}
	if old != "" {
		if err := b.revokeLocked(ctx, key, e, who, iss, creds, old); err != nil {
			return Result{Called: true}, err
		}
	}
	return b.issueLocked(ctx, key, e, who, iss, creds, scope, old)
}

// Revoke ends tok upstream; the other holders of key are told, so they fetch a new one.
func (b *Broker) Revoke(ctx context.Context, key Key, who types.NamespacedName, iss Issuer, creds thingspace.Credentials, tok string) error {
	e := b.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	return b.revokeLocked(ctx, key, e, who, iss, creds, tok)
}

func (b *Broker) revokeLocked(ctx context.Context, key Key, e *entry, who types.NamespacedName, iss Issuer, creds thingspace.Credentials, tok string) error {
	if err := iss.Revoke(ctx, creds, tok); err != nil {
		return err
	}
	// Bounded: a process revokes a handful of tokens per key per hour at most, and this resets the set
	// when it grows anyway (old revoked tokens have expired by then).
	if len(e.revoked) > 64 {
		clear(e.revoked)
	}
	e.revoked[tok] = true
	if e.tok != nil && e.tok.AccessToken == tok {
		e.tok = nil
		b.tellOthers(key, e, who)
	}
	return nil
}

func (b *Broker) issueLocked(ctx context.Context, key Key, e *entry, who types.NamespacedName, iss Issuer, creds thingspace.Credentials, scope, stale string) (Result, error) {
	resp, err := iss.Token(ctx, creds, scope)
	if err != nil {
		return Result{Called: true}, err
	}
	received := b.clock.Now()
	tok := Token{
		AccessToken: resp.AccessToken,
		TokenType:   resp.TokenType,
		IssuedAt:    received.Truncate(renewal.Precision),
		ExpiresAt:   renewal.Expiry(received, resp.ExpiresIn),
	}
	res := Result{Token: tok, Called: true}
	if e.tok != nil && e.tok.AccessToken == tok.AccessToken {
		tok.IssuedAt = e.tok.IssuedAt // the same token: it was issued when first seen
		res.Token = tok
	}
	if tok.AccessToken == stale {
		e.sameTil = received.Add(renewal.SameTokenRetry(resp.ExpiresIn))
		res.RetryAt = e.sameTil
	}
	changed := e.tok == nil || e.tok.AccessToken != tok.AccessToken
	e.tok = &tok
	if changed {
		b.tellOthers(key, e, who)
	}
	return res, nil
}

// tellOthers notifies every holder of key but who. It runs the callbacks off the caller's goroutine:
// the caller holds the key's lock, and a notification may lead straight back into the broker.
func (b *Broker) tellOthers(key Key, e *entry, who types.NamespacedName) {
	if b.notify == nil {
		return
	}
	b.mu.Lock()
	others := make([]types.NamespacedName, 0, len(e.holders))
	for h := range e.holders {
		if h != who {
			others = append(others, h)
		}
	}
	b.mu.Unlock()
	if len(others) == 0 {
		return
	}
	go func() {
		for _, h := range others {
			b.notify(h)
		}
	}()
}
