package tokenbroker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/credops/thingspace-operator/internal/simulator"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/upstream"
)

const (
	tokenRoute  = "POST /api/ts/v1/oauth2/token"
	revokeRoute = "POST /api/ts/v1/oauth2/revoke"
)

// simBroker is a broker in front of the real ThingSpace client and the simulator, on one fake clock.
func simBroker(t *testing.T) (*Broker, *simulator.Server, *thingspace.Client, *clocktesting.FakeClock, Key) {
	t.Helper()
	clk := clocktesting.NewFakeClock(t0)
	sim := simulator.New(simulator.Config{Apps: map[string]string{creds.Key: creds.Secret}, TokenLifetime: time.Hour, Clock: clk})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cli, err := thingspace.New(srv.URL, srv.Client(), thingspace.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	br := New(clk, nil)
	key := NewKey(srv.URL, creds)
	br.Subscribe(key, a)
	br.Subscribe(key, b)
	return br, sim, cli, clk, key
}

// Issue 14: the broker kept no Retry-After per key, so a second holder of a shared key and an
// M2MSession's app-token refresh (no holder identity) called inside the Retry-After the first holder's
// fetch had just got. Every call for the key now waits for it, without an upstream call, and the entry
// goes once the time has passed.
func TestRetryAfterBindsEveryCallerOfTheKey(t *testing.T) {
	br, sim, cli, clk, key := simBroker(t)
	ctx := context.Background()
	first, err := br.Fetch(ctx, key, a, cli, creds, "", "")
	if err != nil {
		t.Fatal(err)
	}
	clk.Step(59*time.Minute + 59*time.Second + 500*time.Millisecond)
	sim.SetFaults(simulator.Faults{Rate: 1, Status: http.StatusTooManyRequests, RetryAfter: 3 * time.Second})
	clk.Step(time.Second) // expired: a fetch must go upstream
	answered := clk.Now()
	_, err = br.Fetch(ctx, key, a, cli, creds, "", first.Token.AccessToken)
	if ra, ok := upstream.RetryAfterOf(err); !ok || ra != 3*time.Second {
		t.Fatalf("the throttled fetch: %v", err)
	}
	sim.SetFaults(simulator.Faults{})
	calls := sim.Stats().Total(tokenRoute)

	clk.Step(2 * time.Second)
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"another holder's fetch", func() error {
			_, err := br.Fetch(ctx, key, b, cli, creds, "", first.Token.AccessToken)
			return err
		}},
		{"a session's refresh (no holder)", func() error {
			_, err := br.Fetch(ctx, key, types.NamespacedName{}, cli, creds, "", first.Token.AccessToken)
			return err
		}},
		{"a rotation", func() error {
			_, err := br.Rotate(ctx, key, a, cli, creds, "", first.Token.AccessToken, "test")
			return err
		}},
		{"a revoke", func() error { return br.Revoke(ctx, key, a, cli, creds, "some-token", "test") }},
	} {
		until, ok := ThrottledUntil(c.call())
		if !ok || !until.Equal(answered.Add(3*time.Second)) {
			t.Errorf("%s inside the Retry-After: throttled %v until %v, want until %v", c.name, ok, until, answered.Add(3*time.Second))
		}
	}
	if n := sim.Stats().Total(tokenRoute); n != calls || sim.Stats().Total(revokeRoute) != 0 {
		t.Fatalf("%d token calls (want %d) and %d revokes inside the Retry-After", n, calls, sim.Stats().Total(revokeRoute))
	}
	if got := br.NotBefore(key); !got.Equal(answered.Add(3 * time.Second)) {
		t.Fatalf("NotBefore = %v", got)
	}

	clk.Step(time.Second) // the Retry-After has passed
	res, err := br.Fetch(ctx, key, b, cli, creds, "", first.Token.AccessToken)
	if err != nil || !res.Called || res.Token.AccessToken == first.Token.AccessToken {
		t.Fatalf("after the Retry-After: %+v %v", res, err)
	}
	clk.Step(time.Second) // and its second
	if nb := br.NotBefore(key); !nb.IsZero() {
		t.Fatalf("NotBefore = %v after its second", nb)
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	if len(br.notBefore) != 0 {
		t.Fatalf("%d Retry-After entries kept after their time", len(br.notBefore))
	}
}

// A transient failure marks the key's last call as failed until a call for it succeeds.
func TestLastCallFailed(t *testing.T) {
	br, sim, cli, _, key := simBroker(t)
	ctx := context.Background()
	sim.SetFaults(simulator.Faults{Rate: 1})
	if _, err := br.Fetch(ctx, key, a, cli, creds, "", ""); err == nil || !br.LastCallFailed(key) {
		t.Fatalf("a 503: err %v, failed %v", err, br.LastCallFailed(key))
	}
	sim.SetFaults(simulator.Faults{})
	if _, err := br.Fetch(ctx, key, a, cli, creds, "", ""); err != nil || br.LastCallFailed(key) {
		t.Fatalf("a success: err %v, failed %v", err, br.LastCallFailed(key))
	}
}
