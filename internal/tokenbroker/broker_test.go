package tokenbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/credops/thingspace-operator/internal/thingspace"
)

// fakeIssuer behaves like the platform for one key: one token until it expires or is revoked.
type fakeIssuer struct {
	mu       sync.Mutex
	clk      *clocktesting.FakeClock
	lifetime time.Duration
	n        int
	cur      string
	expires  time.Time
	tokens   int
	revokes  []string
	fail     error
	// latency, one per call while there are any, passes on the clock before the token is decided;
	// hold passes after it (an answer held on its way back).
	latency []time.Duration
	hold    time.Duration
}

func (f *fakeIssuer) Token(_ context.Context, _ thingspace.Credentials, _ string) (thingspace.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens++
	if f.fail != nil {
		return thingspace.Token{}, f.fail
	}
	if len(f.latency) > 0 {
		f.clk.Step(f.latency[0])
		f.latency = f.latency[1:]
	}
	now := f.clk.Now()
	if f.cur == "" || !now.Before(f.expires) {
		f.n++
		f.cur, f.expires = fmt.Sprintf("tok-%d", f.n), now.Add(f.lifetime)
	}
	f.clk.Step(f.hold)
	return thingspace.Token{AccessToken: f.cur, TokenType: "Bearer", ExpiresIn: f.expires.Sub(now).Truncate(time.Second)}, nil
}

func (f *fakeIssuer) Revoke(_ context.Context, _ thingspace.Credentials, tok string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revokes = append(f.revokes, tok)
	if tok == f.cur {
		f.cur = ""
	}
	return nil
}

var (
	t0    = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	creds = thingspace.Credentials{Key: "k", Secret: "s"}
	a     = types.NamespacedName{Namespace: "ns", Name: "a"}
	b     = types.NamespacedName{Namespace: "ns", Name: "b"}
)

type notes struct {
	mu  sync.Mutex
	got []types.NamespacedName
}

func (n *notes) add(x types.NamespacedName) { n.mu.Lock(); n.got = append(n.got, x); n.mu.Unlock() }
func (n *notes) wait(t *testing.T, want int) []types.NamespacedName {
	t.Helper()
	for i := 0; i < 200; i++ {
		n.mu.Lock()
		if len(n.got) >= want {
			defer n.mu.Unlock()
			return append([]types.NamespacedName(nil), n.got...)
		}
		n.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("got %d notifications, want %d", len(n.got), want)
	return nil
}

func setup() (*Broker, *fakeIssuer, *clocktesting.FakeClock, *notes, Key) {
	clk := clocktesting.NewFakeClock(t0)
	n := &notes{}
	br := New(clk, n.add)
	iss := &fakeIssuer{clk: clk, lifetime: time.Hour}
	key := NewKey("https://ts", creds)
	br.Subscribe(key, a)
	br.Subscribe(key, b)
	return br, iss, clk, n, key
}

func TestHoldersOfOneKeyShareOneUpstreamCall(t *testing.T) {
	br, iss, _, n, key := setup()
	ctx := context.Background()
	ra, err := br.Fetch(ctx, key, a, iss, creds, "", "")
	if err != nil || !ra.Called {
		t.Fatalf("first fetch: %+v %v", ra, err)
	}
	rb, err := br.Fetch(ctx, key, b, iss, creds, "", "")
	if err != nil || rb.Called || rb.Token.AccessToken != ra.Token.AccessToken {
		t.Fatalf("second holder should get the shared token without a call: %+v %v", rb, err)
	}
	if iss.tokens != 1 {
		t.Fatalf("upstream token calls = %d, want 1", iss.tokens)
	}
	if got := n.wait(t, 1); got[0] != b {
		t.Fatalf("notified %v, want only b", got)
	}
	if !ra.Token.ExpiresAt.Equal(t0.Add(time.Hour)) || !ra.Token.IssuedAt.Equal(t0) {
		t.Fatalf("times: %+v", ra.Token)
	}
}

func TestRotateDoesNotRevokeATokenAnotherHolderJustFetched(t *testing.T) {
	br, iss, clk, _, key := setup()
	ctx := context.Background()
	first, _ := br.Fetch(ctx, key, a, iss, creds, "", "")
	clk.Step(50 * time.Minute)
	ra, err := br.Rotate(ctx, key, a, iss, creds, "", first.Token.AccessToken, "test")
	if err != nil || ra.Token.AccessToken == first.Token.AccessToken {
		t.Fatalf("rotate: %+v %v", ra, err)
	}
	// b planned to rotate the same old token a moment later: it must get a's new token, no revoke.
	rb, err := br.Rotate(ctx, key, b, iss, creds, "", first.Token.AccessToken, "test")
	if err != nil || rb.Called || rb.Token.AccessToken != ra.Token.AccessToken {
		t.Fatalf("b should adopt a's rotation: %+v %v", rb, err)
	}
	if len(iss.revokes) != 1 || iss.tokens != 2 {
		t.Fatalf("revokes=%v tokens=%d, want 1 revoke and 2 token calls", iss.revokes, iss.tokens)
	}
}

// Issue 8 scenario 12 and issue 14: at the operator's expiry the platform may still hand out the token
// with expires_in 0 (its expiry came from a repeat answer, rounded down). It is asked for every 250 ms
// in that last second: the new token comes at most 250 ms after the real expiry (it waited a whole
// second before), and never more than 4 calls get the old token again.
func TestFetchAtExpiryWhenUpstreamStillHasTheOldToken(t *testing.T) {
	for _, late := range []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 999 * time.Millisecond} {
		t.Run(late.String(), func(t *testing.T) {
			br, iss, clk, _, key := setup()
			ctx := context.Background()
			first, _ := br.Fetch(ctx, key, a, iss, creds, "", "")
			// The platform's own expiry is later than the broker's (a rounded-down expires_in).
			iss.expires = iss.expires.Add(late)
			real := iss.expires
			clk.SetTime(first.Token.ExpiresAt)
			r, err := br.Fetch(ctx, key, a, iss, creds, "", first.Token.AccessToken)
			if err != nil || r.Token.AccessToken != first.Token.AccessToken || !r.RetryAt.Equal(first.Token.ExpiresAt.Add(250*time.Millisecond)) {
				t.Fatalf("same token should come back with a retry in 250ms: %+v %v", r, err)
			}
			// b asking in the same instant makes no second call.
			rb, _ := br.Fetch(ctx, key, b, iss, creds, "", first.Token.AccessToken)
			if rb.Called || iss.tokens != 2 {
				t.Fatalf("b made a call during the retry window: %+v, tokens=%d", rb, iss.tokens)
			}
			for r.Token.AccessToken == first.Token.AccessToken {
				if iss.tokens > 6 {
					t.Fatalf("%d token calls around one expiry", iss.tokens)
				}
				clk.SetTime(r.RetryAt)
				r, _ = br.Fetch(ctx, key, a, iss, creds, "", first.Token.AccessToken)
			}
			if landed := clk.Now().Sub(real); landed < 0 || landed > 250*time.Millisecond || !r.RetryAt.IsZero() {
				t.Fatalf("the new token came %v after the real expiry (%+v)", landed, r)
			}
			if extra := iss.tokens - 2; extra > 4 {
				t.Fatalf("%d calls got the old token again", extra)
			}
		})
	}
}

func TestSeedKeepsTheLaterTokenAndRefusesRevokedOnes(t *testing.T) {
	br, iss, _, _, key := setup()
	ctx := context.Background()
	older := Token{AccessToken: "old", ExpiresAt: t0.Add(10 * time.Minute)}
	newer := Token{AccessToken: "new", ExpiresAt: t0.Add(50 * time.Minute)}
	br.Seed(key, newer)
	br.Seed(key, older)
	if cur, ok := br.Current(key); !ok || cur.AccessToken != "new" {
		t.Fatalf("Current = %+v %v, want the later token", cur, ok)
	}
	if err := br.Revoke(ctx, key, a, iss, creds, "new", "test"); err != nil {
		t.Fatal(err)
	}
	br.Seed(key, newer)
	if cur, ok := br.Current(key); ok {
		t.Fatalf("a revoked token came back through Seed: %+v", cur)
	}
	br.Seed(key, Token{AccessToken: "expired", ExpiresAt: t0})
	if _, ok := br.Current(key); ok {
		t.Fatal("an expired token was seeded")
	}
}

func TestRevokeTellsTheOtherHolders(t *testing.T) {
	br, iss, _, n, key := setup()
	ctx := context.Background()
	br.Seed(key, Token{AccessToken: "t", ExpiresAt: t0.Add(time.Hour)})
	if err := br.Revoke(ctx, key, a, iss, creds, "t", "test"); err != nil {
		t.Fatal(err)
	}
	if got := n.wait(t, 1); got[0] != b {
		t.Fatalf("notified %v, want b", got)
	}
}

func TestFailuresAreReturnedAndNothingIsCached(t *testing.T) {
	br, iss, _, _, key := setup()
	iss.fail = errors.New("boom")
	if _, err := br.Fetch(context.Background(), key, a, iss, creds, "", ""); err == nil {
		t.Fatal("want error")
	}
	if _, ok := br.Current(key); ok {
		t.Fatal("a failed fetch left a token behind")
	}
}

func TestKeysSeparateSecretsAndEndpoints(t *testing.T) {
	k1 := NewKey("https://ts", creds)
	if k1 != NewKey("https://ts", thingspace.Credentials{Key: "k", Secret: "s"}) {
		t.Fatal("equal inputs must give equal keys")
	}
	if k1 == NewKey("https://ts", thingspace.Credentials{Key: "k", Secret: "other"}) || k1 == NewKey("https://other", creds) {
		t.Fatal("different secret or endpoint must give different keys")
	}
}

func TestUnsubscribeForgetsUnheldKeys(t *testing.T) {
	br, iss, _, _, key := setup()
	_, _ = br.Fetch(context.Background(), key, a, iss, creds, "", "")
	br.Unsubscribe(a)
	if _, ok := br.Current(key); !ok {
		t.Fatal("b still holds the key; the token must stay")
	}
	br.Unsubscribe(b)
	br.mu.Lock()
	defer br.mu.Unlock()
	if len(br.entries) != 0 {
		t.Fatalf("entries left: %d", len(br.entries))
	}
}

// Issue 8 scenario 18: calls for a key nobody holds (a deletion's revoke after a restart, a reconcile
// that read a key before subscribing) created entries that were never freed.
func TestCallsForUnheldKeysLeaveNoEntry(t *testing.T) {
	br, iss, _, _, _ := setup()
	ctx := context.Background()
	other := NewKey("https://ts", thingspace.Credentials{Key: "nobody", Secret: "holds"})
	br.Seed(other, Token{AccessToken: "x", ExpiresAt: t0.Add(time.Hour)})
	br.Current(other)
	if _, err := br.Fetch(ctx, other, a, iss, creds, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := br.Rotate(ctx, other, a, iss, creds, "", "tok-1", ""); err != nil {
		t.Fatal(err)
	}
	if err := br.Revoke(ctx, other, a, iss, creds, "tok-2", ""); err != nil {
		t.Fatal(err)
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	if _, ok := br.entries[other]; ok || len(br.entries) != 1 {
		t.Fatalf("%d entries; want only the held key's", len(br.entries))
	}
}

// Issue 8 scenarios 9 and 18: a rotation says whether it revoked (even when the issue then failed), and
// the other holders can learn who revoked their token and why.
func TestRotateRecordsTheRevocation(t *testing.T) {
	br, iss, _, _, key := setup()
	ctx := context.Background()
	first, _ := br.Fetch(ctx, key, a, iss, creds, "", "")
	iss.fail = errors.New("boom")
	res, err := br.Rotate(ctx, key, a, iss, creds, "", first.Token.AccessToken, "refresh requested")
	if err == nil || !res.Revoked {
		t.Fatalf("Rotate = %+v, %v; want Revoked and the issue's error", res, err)
	}
	r, ok := br.RevokedBy(key, first.Token.AccessToken)
	if !ok || r.By != a || r.Why != "refresh requested" {
		t.Fatalf("RevokedBy = %+v, %v", r, ok)
	}
	if _, ok := br.RevokedBy(key, "other"); ok {
		t.Fatal("a token nobody revoked is reported revoked")
	}
	if got := br.OtherHolders(key, a); len(got) != 1 || got[0] != b {
		t.Fatalf("OtherHolders = %v", got)
	}
}

// Issue 8 scenario 2: a token's provenance names the endpoint, key and secret that issued it.
func TestProvenanceBindsKeyAndToken(t *testing.T) {
	k := NewKey("https://ts", creds)
	p := k.Provenance("t")
	if p == "" || p != NewKey("https://ts", creds).Provenance("t") {
		t.Fatal("provenance must be stable")
	}
	for _, other := range []string{
		NewKey("https://ts", thingspace.Credentials{Key: "k", Secret: "s2"}).Provenance("t"),
		NewKey("https://ts", thingspace.Credentials{Key: "k2", Secret: "s"}).Provenance("t"),
		NewKey("https://other", creds).Provenance("t"),
		k.Provenance("t2"),
	} {
		if other == p {
			t.Fatal("a different endpoint, key, secret or token gave the same provenance")
		}
	}
}

// Issue 8 scenario 9: two holders revoking one token (deleted together) make one upstream call.
func TestRevokeOnceOnly(t *testing.T) {
	br, iss, _, _, key := setup()
	ctx := context.Background()
	first, _ := br.Fetch(ctx, key, a, iss, creds, "", "")
	for _, who := range []types.NamespacedName{a, b} {
		if err := br.Revoke(ctx, key, who, iss, creds, first.Token.AccessToken, "revokeOnDelete"); err != nil {
			t.Fatal(err)
		}
	}
	if len(iss.revokes) != 1 {
		t.Fatalf("%d revokes of one token", len(iss.revokes))
	}
}

// Issue 8 scenario 9: a revocation is remembered past the last holder's unsubscribe, so a deletion
// retried on a stale cache neither revokes again nor seeds the dead token back.
func TestRevocationOutlivesTheEntry(t *testing.T) {
	br, iss, clk, _, key := setup()
	ctx := context.Background()
	first, _ := br.Fetch(ctx, key, a, iss, creds, "", "")
	tok := first.Token.AccessToken
	if err := br.Revoke(ctx, key, a, iss, creds, tok, "revokeOnDelete"); err != nil {
		t.Fatal(err)
	}
	br.Unsubscribe(a)
	br.Unsubscribe(b)
	if _, ok := br.RevokedBy(key, tok); !ok {
		t.Fatal("the revocation was forgotten with the entry")
	}
	if err := br.Revoke(ctx, key, b, iss, creds, tok, "revokeOnDelete"); err != nil || len(iss.revokes) != 1 {
		t.Fatalf("second revoke: %v, %d upstream revokes", err, len(iss.revokes))
	}
	br.Subscribe(key, a)
	br.Seed(key, first.Token)
	if cur, ok := br.Current(key); ok && cur.AccessToken == tok {
		t.Fatal("a revoked token was seeded back")
	}
	// Forgotten once it would have expired anyway.
	clk.Step(2 * time.Hour)
	other := NewKey("https://ts", thingspace.Credentials{Key: "x", Secret: "y"})
	br.recordRevoked(other, "z", time.Time{}, Revocation{})
	if _, ok := br.RevokedBy(key, tok); ok {
		t.Fatal("an expired revocation is kept")
	}
}

// Issue 14, seed 66: an answer held 3 s on its way back (the upstream decided at once) counted its
// expires_in from its receipt, and the token died 3 s before the expiry the broker published. A slow
// answer counts from its send time (renewal.Anchor): the expiry is never past the real one.
func TestAHeldAnswersExpiryIsNotPastTheRealOne(t *testing.T) {
	br, iss, _, _, key := setup()
	iss.hold = 3 * time.Second
	r, err := br.Fetch(context.Background(), key, a, iss, creds, "", "")
	if err != nil || r.Token.ExpiresAt.After(iss.expires) {
		t.Fatalf("expiry %v, the real one %v (%v)", r.Token.ExpiresAt, iss.expires, err)
	}
}

// The other side of a slow answer: the upstream decided late (latency on the way there), so the
// expiry counted from the send time is early, and the ask at it may get the same token with
// expires_in 0, slowly again. Its next ask (250 ms after its send) is then due at once: Fetch makes
// it, and the new token comes at the real expiry, within one Fetch.
func TestASlowSameTokenAnswersNextAskIsMadeAtOnce(t *testing.T) {
	br, iss, clk, _, key := setup()
	ctx := context.Background()
	iss.latency = []time.Duration{600 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
	first, err := br.Fetch(ctx, key, a, iss, creds, "", "")
	if err != nil {
		t.Fatal(err)
	}
	real := iss.expires
	if !first.Token.ExpiresAt.Before(real) {
		t.Fatalf("expiry %v, want the send time's, before the real %v", first.Token.ExpiresAt, real)
	}
	clk.SetTime(first.Token.ExpiresAt)
	r, err := br.Fetch(ctx, key, a, iss, creds, "", first.Token.AccessToken)
	if err != nil || r.Token.AccessToken == first.Token.AccessToken || !r.RetryAt.IsZero() {
		t.Fatalf("want the new token from one Fetch: %+v %v (%d token calls)", r, err, iss.tokens)
	}
	if iss.tokens != 3 || clk.Now().Sub(real) > 0 {
		t.Fatalf("%d token calls, the new token %v after the real expiry; want 3 calls, at it", iss.tokens, clk.Now().Sub(real))
	}
}
