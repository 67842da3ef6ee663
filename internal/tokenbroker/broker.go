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
	"errors"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/upstream"
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

// Provenance is what the Secret holding token records about who issued it: a digest of the endpoint,
// the key, the secret and the token itself. A token read back from a Secret is only ever associated
// with the key whose Provenance it carries (issue 8 scenario 2): a change of endpoint, key or secret
// makes it someone else's. The digest reveals none of its inputs, and binding the token in makes it
// useless for anything but checking this one token.
func (k Key) Provenance(token string) string {
	sum := sha256.Sum256([]byte("thingspace-operator/provenance/v1\x00" + k.Endpoint + "\x00" + k.ClientKey + "\x00" + k.digest + "\x00" + token))
	return hex.EncodeToString(sum[:])
}

// HolderDigest names the key among managers (the holder registry, internal/holders): a digest of the
// endpoint, the key and the secret's digest, under a label of its own so that it matches no
// Provenance. Like Provenance it reveals none of its inputs; unlike it, it is the same for every token
// of the key.
func (k Key) HolderDigest() string {
	sum := sha256.Sum256([]byte("thingspace-operator/holder/v1\x00" + k.Endpoint + "\x00" + k.ClientKey + "\x00" + k.digest))
	return hex.EncodeToString(sum[:])
}

// ExpiryProvenance is the digest binding a token to the expiry written with it (the Secret's
// expires_at as written), under the same key.
func (k Key) ExpiryProvenance(token, expiresAt string) string {
	sum := sha256.Sum256([]byte("thingspace-operator/expiry-provenance/v1\x00" + k.Endpoint + "\x00" + k.ClientKey + "\x00" + k.digest + "\x00" + token + "\x00" + expiresAt))
	return hex.EncodeToString(sum[:])
}

// Token is an app token with the instants the operator keeps, in whole seconds.
type Token struct {
	AccessToken string
	TokenType   string
	IssuedAt    time.Time
	ExpiresAt   time.Time
	// LifetimeAssumed and LifetimeCapped say the upstream's expires_in was missing or beyond the
	// believed maximum (see thingspace.Token); the holders warn about it.
	LifetimeAssumed, LifetimeCapped bool
}

// Result is the outcome of a call that may have gone upstream.
type Result struct {
	Token Token
	// Called is true when the upstream was asked.
	Called bool
	// RetryAt is set when the upstream answered with the token the caller wanted replaced, or with
	// expires_in 0: it has not expired upstream yet, and asking again before RetryAt is pointless.
	RetryAt time.Time
	// Revoked is set when the call revoked the token it was to replace (Rotate), even when getting the
	// next one then failed: the old token is dead. A revoke whose answer never came counts when the
	// token request after it brought another token, or failed too (the old token may be dead).
	Revoked bool
}

// Broker shares tokens between the objects that use one key.
type Broker struct {
	clock  clock.PassiveClock
	notify func(types.NamespacedName)

	mu      sync.Mutex
	entries map[Key]*entry
	subs    map[types.NamespacedName]Key
	// revoked holds the tokens this process revoked, never handed out again, until they would have
	// expired anyway. It outlives the entries: a deletion retried on a stale cache must not revoke
	// (or a seed resurrect) a token its key's last holder already revoked.
	revoked map[revokedToken]revocation
	// notBefore holds, per key, the time before which the upstream asked not to be called
	// (throttle.go); an entry lives only until that time.
	notBefore map[Key]time.Time
}

type entry struct {
	mu  sync.Mutex // held across upstream calls: one call per key at a time
	tok *Token
	// same is set while the upstream answers with the token asked to be replaced (nil otherwise: a
	// key costs a pointer for it).
	same    *sameAnswer
	holders holderSet
	// refs counts the calls using the entry (guarded by Broker.mu): an entry lives while it has
	// holders or calls, so a call for a key nobody holds leaves nothing behind (issue 8 scenario 18).
	refs int32
	// failed: the key's last upstream call failed transiently (throttle.go).
	failed bool
}

// New returns a broker. notify is called (from a goroutine of its own) with every holder of a key whose
// token changed, except the one that changed it.
func New(clk clock.PassiveClock, notify func(types.NamespacedName)) *Broker {
	return &Broker{clock: clk, notify: notify, entries: map[Key]*entry{}, subs: map[types.NamespacedName]Key{},
		revoked: map[revokedToken]revocation{}, notBefore: map[Key]time.Time{}}
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
	e.holders.add(who)
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
		e.holders.remove(who)
		b.freeLocked(key, e)
	}
}

func (b *Broker) freeLocked(key Key, e *entry) {
	if e.holders.len() == 0 && e.refs == 0 && b.entries[key] == e {
		delete(b.entries, key)
	}
}

func (b *Broker) entryLocked(key Key) *entry {
	e, ok := b.entries[key]
	if !ok {
		e = &entry{}
		b.entries[key] = e
	}
	return e
}

// acquire returns key's entry for one call, locked; release undoes both.
func (b *Broker) acquire(key Key) *entry {
	b.mu.Lock()
	e := b.entryLocked(key)
	e.refs++
	b.mu.Unlock()
	e.mu.Lock()
	return e
}

func (b *Broker) release(key Key, e *entry) {
	e.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	e.refs--
	b.freeLocked(key, e)
}

// OtherHolders returns the objects other than who that hold key's token in this process.
func (b *Broker) OtherHolders(key Key, who types.NamespacedName) []types.NamespacedName {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok {
		return nil
	}
	return e.holders.except(who)
}

// HeldKeys returns the keys some object of this process holds (see Subscribe).
func (b *Broker) HeldKeys() []Key {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Key, 0, len(b.entries))
	for k, e := range b.entries {
		if e.holders.len() > 0 {
			out = append(out, k)
		}
	}
	return out
}

// Seed offers a token read back from a Secret (after a restart, say). The broker keeps it when it knows
// no valid token for the key or only one that expires earlier: for one key, the later expiry is the
// later issue. A token this process revoked is refused.
func (b *Broker) Seed(key Key, tok Token) {
	if tok.AccessToken == "" {
		return
	}
	e := b.acquire(key)
	defer b.release(key, e)
	if b.isRevoked(key, tok.AccessToken) || !b.clock.Now().Before(tok.ExpiresAt) {
		return
	}
	if e.tok == nil || tok.ExpiresAt.After(e.tok.ExpiresAt) {
		t := tok
		e.tok = &t
	}
}

// Current returns the valid token the broker knows for key.
func (b *Broker) Current(key Key) (Token, bool) {
	e := b.acquire(key)
	defer b.release(key, e)
	if e.tok == nil || !b.clock.Now().Before(e.tok.ExpiresAt) {
		return Token{}, false
	}
	return *e.tok, true
}

// Fetch returns a valid token other than stale, asking the upstream only when the broker has none.
// When the upstream still answers with stale, the Result says so through RetryAt. Inside the key's
// Retry-After it sends nothing and returns a ThrottledError.
func (b *Broker) Fetch(ctx context.Context, key Key, who types.NamespacedName, iss Issuer, creds thingspace.Credentials, scope, stale string) (Result, error) {
	e := b.acquire(key)
	defer b.release(key, e)
	now := b.clock.Now()
	if e.tok != nil && now.Before(e.tok.ExpiresAt) && e.tok.AccessToken != stale {
		return Result{Token: *e.tok}, nil
	}
	if e.tok != nil && e.tok.AccessToken == stale && e.same != nil && now.Before(e.same.til) {
		return Result{Token: *e.tok, RetryAt: e.same.til}, nil
	}
	res, err := b.issueLocked(ctx, key, e, who, iss, creds, scope, stale)
	// After a slow same-token answer the next ask may be due already (renewal.SameTokenRetry): it is
	// made now, not a pass and a requeue later, while the Secret may hold a dead token. A failure of
	// such an ask leaves the answer before it standing (the broker has noted the failure).
	for i := 0; i < maxDueAsks && err == nil && !res.RetryAt.IsZero() && !res.RetryAt.After(b.clock.Now()); i++ {
		again, err := b.issueLocked(ctx, key, e, who, iss, creds, scope, stale)
		if err != nil {
			break
		}
		res = again
	}
	return res, err
}

// maxDueAsks bounds the asks Fetch repeats at once: the contract's last second, at SameTokenPoll.
const maxDueAsks = int(time.Second / renewal.SameTokenPoll)

// Rotate replaces old with a new token: it revokes old and asks for another, unless another holder has
// rotated it already, in which case the newer token is returned without an upstream call. why is told
// to the other holders (see RevokedBy). Inside the key's Retry-After it revokes nothing and returns a
// ThrottledError.
func (b *Broker) Rotate(ctx context.Context, key Key, who types.NamespacedName, iss Issuer, creds thingspace.Credentials, scope, old, why string) (Result, error) {
	e := b.acquire(key)
	defer b.release(key, e)
	if e.tok != nil && b.clock.Now().Before(e.tok.ExpiresAt) && e.tok.AccessToken != old {
		return Result{Token: *e.tok}, nil
	}
	revoked, maybe := false, false
	if old != "" {
		switch err := b.revokeLocked(ctx, key, e, who, iss, creds, old, why); {
		case err == nil:
			revoked = true
		case unanswered(err):
			// The upstream may have revoked it: the token request tells at once (a new token if it
			// did, the same one if not), rather than leaving a possibly dead token in place.
			maybe = true
		default:
			return Result{Called: true}, err
		}
	}
	res, err := b.issueLocked(ctx, key, e, who, iss, creds, scope, old)
	res.Revoked = revoked
	if maybe {
		switch {
		case err != nil:
			// Still unknown: treated as dead, so the next pass fetches instead of trusting it.
			res.Revoked = true
			if e.tok != nil && e.tok.AccessToken == old {
				e.tok = nil
			}
		case res.Token.AccessToken != old:
			res.Revoked = true
			b.recordRevoked(key, old, time.Time{}, Revocation{By: who, Why: why})
		}
	}
	return res, err
}

// unanswered reports whether err is a request written out whose answer never came: the upstream may
// have acted on it.
func unanswered(err error) bool {
	var e *upstream.Error
	return errors.As(err, &e) && e.Unanswered
}

// Revoke ends tok upstream; the other holders of key are told (why: see RevokedBy), so they fetch a
// new one.
func (b *Broker) Revoke(ctx context.Context, key Key, who types.NamespacedName, iss Issuer, creds thingspace.Credentials, tok, why string) error {
	e := b.acquire(key)
	defer b.release(key, e)
	return b.revokeLocked(ctx, key, e, who, iss, creds, tok, why)
}

func (b *Broker) revokeLocked(ctx context.Context, key Key, e *entry, who types.NamespacedName, iss Issuer, creds thingspace.Credentials, tok, why string) error {
	if b.isRevoked(key, tok) {
		return nil // revoked already: once is enough
	}
	if err := b.checkThrottle(key); err != nil {
		return err
	}
	err := iss.Revoke(ctx, creds, tok)
	b.noteOutcome(key, e, err)
	if err != nil {
		return err
	}
	var expires time.Time
	if e.tok != nil && e.tok.AccessToken == tok {
		expires = e.tok.ExpiresAt
	}
	b.recordRevoked(key, tok, expires, Revocation{By: who, Why: why})
	if e.tok != nil && e.tok.AccessToken == tok {
		e.tok = nil
		b.tellOthers(key, e, who)
	}
	return nil
}

func (b *Broker) issueLocked(ctx context.Context, key Key, e *entry, who types.NamespacedName, iss Issuer, creds thingspace.Credentials, scope, stale string) (Result, error) {
	if err := b.checkThrottle(key); err != nil {
		return Result{}, err
	}
	sent := b.clock.Now()
	resp, err := iss.Token(ctx, creds, scope)
	b.noteOutcome(key, e, err)
	if err != nil {
		return Result{Called: true}, err
	}
	received := b.clock.Now()
	tok := Token{
		AccessToken: resp.AccessToken,
		TokenType:   resp.TokenType,
		IssuedAt:    received.Truncate(renewal.Precision),
		ExpiresAt:   renewal.Expiry(renewal.Anchor(sent, received), resp.ExpiresIn),

		LifetimeAssumed: resp.LifetimeAssumed,
		LifetimeCapped:  resp.LifetimeCapped,
	}
	res := Result{Token: tok, Called: true}
	var zeroSince time.Time
	if e.tok != nil && e.tok.AccessToken == tok.AccessToken {
		tok.IssuedAt = e.tok.IssuedAt // the same token: it was issued when first seen
		// A quick answer's expiry errs late by its latency at most, a slow one's early by its way there
		// (renewal.Anchor), and a repeat answer's early by up to the second it rounds down: the latest
		// is the closest.
		tok.ExpiresAt = laterOf(tok.ExpiresAt, e.tok.ExpiresAt)
		res.Token = tok
		if e.same != nil {
			zeroSince = e.same.zeroAt
		}
	}
	e.same = nil
	if tok.AccessToken == stale || resp.ExpiresIn <= 0 {
		// Not replaced yet, or "expired now" (issue 8 scenario 12): ask again shortly.
		if zeroSince.IsZero() && resp.ExpiresIn <= 0 {
			zeroSince = received
		}
		e.same = &sameAnswer{til: renewal.SameTokenRetry(sent, received, resp.ExpiresIn, zeroSince), zeroAt: zeroSince}
		res.RetryAt = e.same.til
	}
	changed := e.tok == nil || e.tok.AccessToken != tok.AccessToken
	e.tok = &tok
	if changed {
		b.tellOthers(key, e, who)
	}
	return res, nil
}

// sameAnswer is what the same-token answers for the key's current token said (renewal.SameTokenRetry).
type sameAnswer struct {
	til    time.Time // don't ask again before this
	zeroAt time.Time // the first answer with expires_in 0 arrived (zero: none yet)
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// tellOthers notifies every holder of key but who. It runs the callbacks off the caller's goroutine:
// the caller holds the key's lock, and a notification may lead straight back into the broker.
func (b *Broker) tellOthers(key Key, e *entry, who types.NamespacedName) {
	if b.notify == nil {
		return
	}
	b.mu.Lock()
	others := e.holders.except(who)
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
