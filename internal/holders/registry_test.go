package holders

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
)

var (
	t0      = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	creds   = thingspace.Credentials{Key: "shared-client-key", Secret: "shared-client-secret"}
	key     = tokenbroker.NewKey("https://ts", creds)
	another = tokenbroker.NewKey("https://ts", thingspace.Credentials{Key: "other-key", Secret: "other-secret"})
)

func newPair(t *testing.T) (a, b *Registry, clk *clocktesting.FakeClock, c client.Client) {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c = fake.NewClientBuilder().WithScheme(s).Build()
	clk = clocktesting.NewFakeClock(t0)
	mk := func(id string) *Registry {
		return &Registry{Reader: c, Writer: c, Namespace: "ops", Identity: id, Clock: clk}
	}
	return mk("shard-a.thingspace-operator.credops.io"), mk("shard-b.thingspace-operator.credops.io"), clk, c
}

func others(t *testing.T, r *Registry, k tokenbroker.Key) int {
	t.Helper()
	n, err := r.Others(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestHoldIsSeenByOtherShardsOnly(t *testing.T) {
	a, b, _, _ := newPair(t)
	ctx := context.Background()
	if others(t, b, key) != 0 {
		t.Fatal("nobody holds the key yet")
	}
	if err := a.Hold(ctx, key); err != nil {
		t.Fatal(err)
	}
	if got := others(t, b, key); got != 1 {
		t.Errorf("b sees %d other holders, want 1 (a)", got)
	}
	if got := others(t, a, key); got != 0 {
		t.Errorf("a sees %d other holders, want 0: its own Lease does not count", got)
	}
	if got := others(t, b, another); got != 0 {
		t.Errorf("another key: %d holders, want 0", got)
	}
	if err := b.Hold(ctx, key); err != nil {
		t.Fatal(err)
	}
	if got := others(t, a, key); got != 1 {
		t.Errorf("a sees %d other holders, want 1 (b)", got)
	}
}

// Hold writes the key's Lease once and the heartbeat when the Renewer has not for half its Duration;
// a shard whose heartbeat is older than its Duration no longer counts.
func TestHoldWritesRarelyAndDeadShardsStopCounting(t *testing.T) {
	a, b, clk, _ := newPair(t)
	ctx := context.Background()
	for range 100 {
		if err := a.Hold(ctx, key); err != nil {
			t.Fatal(err)
		}
		clk.Step(time.Second)
	}
	if a.Writes() != 2 {
		t.Errorf("100 holds within %s: %d writes, want 2 (the key's Lease, the heartbeat)", 100*time.Second, a.Writes())
	}
	// An hour of reconciles every 30 s, no Renewer: a heartbeat every Duration/2.
	for range 120 {
		clk.Step(30 * time.Second)
		if err := a.Hold(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if w := a.Writes(); w != 2+int64(time.Hour/(DefaultDuration/2)) {
		t.Errorf("an hour of holds without the Renewer: %d writes, want the key's Lease once and a heartbeat per %s", w, DefaultDuration/2)
	}
	if others(t, b, key) != 1 {
		t.Fatal("a's heartbeat is fresh: it counts")
	}
	clk.Step(DefaultDuration)
	if got := others(t, b, key); got != 0 {
		t.Errorf("a's heartbeat not renewed for %s: b sees %d holders, want 0", DefaultDuration, got)
	}
}

// Sync renews the heartbeat and deletes the Leases of keys let go; a restarted shard rewrites nothing
// but its heartbeat.
func TestSyncDeletesLeasesOfKeysLetGo(t *testing.T) {
	a, b, clk, c := newPair(t)
	ctx := context.Background()
	if err := a.Sync(ctx, []tokenbroker.Key{key, another}); err != nil {
		t.Fatal(err)
	}
	if err := b.Hold(ctx, key); err != nil {
		t.Fatal(err)
	}
	clk.Step(DefaultRenewEvery)
	if err := a.Sync(ctx, []tokenbroker.Key{key}); err != nil {
		t.Fatal(err)
	}
	if others(t, b, another) != 0 || others(t, b, key) != 1 {
		t.Errorf("after a let another go: b sees %d holders of another (want 0), %d of key (want 1)", others(t, b, another), others(t, b, key))
	}
	// A heartbeat and 2 keys created, a renewal, a delete; b's Lease is not a's to delete.
	if a.Writes() != 5 {
		t.Errorf("a wrote %d times, want 5", a.Writes())
	}
	restarted := &Registry{Reader: c, Writer: c, Namespace: a.Namespace, Identity: a.Identity, Clock: clk}
	if err := restarted.Hold(ctx, key); err != nil {
		t.Fatal(err)
	}
	if restarted.Writes() != 0 {
		t.Errorf("a restarted shard holding its key again wrote %d times, want 0 (its heartbeat is fresh)", restarted.Writes())
	}
	if err := restarted.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	list := &coordinationv1.LeaseList{}
	if err := c.List(ctx, list, client.MatchingLabels{LabelComponent: componentKey}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || *list.Items[0].Spec.HolderIdentity != b.Identity {
		t.Errorf("keys' Leases left: %d, want b's only", len(list.Items))
	}
	if others(t, b, key) != 0 {
		t.Error("a let the key go: b sees it held")
	}
}

// The Leases name neither the key nor its secret.
func TestLeasesCarryNoCredential(t *testing.T) {
	a, _, _, c := newPair(t)
	if err := a.Hold(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	list := &coordinationv1.LeaseList{}
	if err := c.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(list)
	for _, s := range []string{creds.Key, creds.Secret} {
		if strings.Contains(string(raw), s) {
			t.Errorf("a Lease carries %q: %s", s, raw)
		}
	}
	if len(list.Items) != 2 || len(list.Items[0].Name) > 253 { // the key's Lease, the heartbeat
		t.Errorf("leases %v", list.Items)
	}
}

// The write count of a manager holding 10 keys for 3 hours, its apps reconciling every minute and its
// renewer syncing every RenewEvery: each key's Lease once, the heartbeat once per RenewEvery whatever
// the number of keys; a restart's holds write nothing while the heartbeat is fresh.
func TestWritesPerHour(t *testing.T) {
	a, _, clk, c := newPair(t)
	ctx := context.Background()
	var keys []tokenbroker.Key
	for i := range 10 {
		keys = append(keys, tokenbroker.NewKey("https://ts", thingspace.Credentials{Key: "k", Secret: string(rune('a' + i))}))
	}
	start := clk.Now()
	for clk.Now().Sub(start) < 3*time.Hour {
		for _, k := range keys {
			if err := a.Hold(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		clk.Step(time.Minute)
		if clk.Now().Sub(start)%DefaultRenewEvery == 0 {
			if err := a.Sync(ctx, keys); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("10 keys, 3 h: %d writes (10 keys' Leases, %d heartbeats)", a.Writes(), a.Writes()-10)
	if beats := a.Writes() - 10; beats > 1+3*int64(time.Hour/DefaultRenewEvery) {
		t.Errorf("%d heartbeats in 3 h, want at most one per %s", beats, DefaultRenewEvery)
	}
	restarted := &Registry{Reader: c, Writer: c, Namespace: a.Namespace, Identity: a.Identity, Clock: clk}
	for _, k := range keys {
		if err := restarted.Hold(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if restarted.Writes() != 0 {
		t.Errorf("a restart holding 10 keys again: %d writes, want 0", restarted.Writes())
	}
}

// countingReader counts the reads that reach the API server.
type countingReader struct {
	client.Reader
	reads int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.reads++
	return c.Reader.Get(ctx, key, obj, opts...)
}

func (c *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	c.reads++
	return c.Reader.List(ctx, list, opts...)
}

// A new leader of the shard (another process, the same holder) takes over the Leases its predecessor
// kept: its first Hold, in front of its first upstream call, is one List, no write, while the
// heartbeat is fresh (chaos suite, issue 14: each reconcile of a new leader read and wrote the
// heartbeat before its first token call). A heartbeat older than half its Duration is written.
func TestANewLeaderHoldsWithOneListAndNoWrite(t *testing.T) {
	a, _, clk, c := newPair(t)
	ctx := context.Background()
	if err := a.Hold(ctx, key); err != nil {
		t.Fatal(err)
	}
	clk.Step(DefaultRenewEvery)
	reads := &countingReader{Reader: c}
	next := &Registry{Reader: reads, Writer: c, Namespace: a.Namespace, Identity: a.Identity, Clock: clk}
	for range 3 {
		if err := next.Hold(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if reads.reads != 1 || next.Writes() != 0 {
		t.Errorf("a new leader's holds: %d reads, %d writes; want 1 (a List) and 0", reads.reads, next.Writes())
	}
	clk.Step(next.duration() / 2)
	if err := next.Hold(ctx, key); err != nil {
		t.Fatal(err)
	}
	if next.Writes() != 1 {
		t.Errorf("a heartbeat older than half its Duration: %d writes, want 1", next.Writes())
	}
	// Another shard's heartbeat is not this one's.
	other := &Registry{Reader: c, Writer: c, Namespace: a.Namespace, Identity: "shard-c.thingspace-operator.credops.io", Clock: clk}
	if err := other.Hold(ctx, key); err != nil {
		t.Fatal(err)
	}
	if other.Writes() != 2 {
		t.Errorf("a shard with no heartbeat of its own: %d writes, want 2 (its key's Lease, its heartbeat)", other.Writes())
	}
}
