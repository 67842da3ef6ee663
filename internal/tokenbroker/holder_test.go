package tokenbroker

import (
	"context"
	"strings"
	"testing"

	"github.com/credops/thingspace-operator/internal/thingspace"
)

// The holder digest names a key among managers: the same for every token of the key, different for
// another secret or endpoint, never a Provenance, and free of the key and the secret.
func TestHolderDigest(t *testing.T) {
	k := NewKey("https://ts", thingspace.Credentials{Key: "the-client-key", Secret: "the-client-secret"})
	d := k.HolderDigest()
	if d != NewKey("https://ts", thingspace.Credentials{Key: "the-client-key", Secret: "the-client-secret"}).HolderDigest() {
		t.Fatal("equal keys must give equal digests")
	}
	for _, other := range []Key{
		NewKey("https://ts", thingspace.Credentials{Key: "the-client-key", Secret: "other"}),
		NewKey("https://other", thingspace.Credentials{Key: "the-client-key", Secret: "the-client-secret"}),
	} {
		if other.HolderDigest() == d {
			t.Errorf("%v: same digest as another key", other.Endpoint)
		}
	}
	if d == k.Provenance("") || len(d) != 64 || strings.Contains(d, "the-client") {
		t.Errorf("digest %q", d)
	}
}

func TestHeldKeysListsKeysWithHolders(t *testing.T) {
	br, iss, _, _, key := setup() // a and b hold key
	// A call for a key nobody holds does not make it held.
	other := NewKey("https://other", creds)
	_, _ = br.Fetch(context.Background(), other, a, iss, creds, "", "")
	if got := br.HeldKeys(); len(got) != 1 || got[0] != key {
		t.Fatalf("held keys %v, want only the subscribed one", got)
	}
	br.Unsubscribe(a)
	if got := br.HeldKeys(); len(got) != 1 {
		t.Fatalf("held keys with b still holding: %v", got)
	}
	br.Unsubscribe(b)
	if got := br.HeldKeys(); len(got) != 0 {
		t.Fatalf("held keys after unsubscribe: %v", got)
	}
}
