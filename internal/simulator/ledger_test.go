package simulator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The ledger names each call's subject, what it was issued, the Retry-After it was sent and a call that
// came back within it; Live tells a live token from a dead one.
func TestLedgerRecordsCallsAndRetryAfter(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Ledger = true })
	if w := f.do(formReq(tsTokenPath, basic(appKey, appSecret), "grant_type=client_credentials")); w.Code != http.StatusOK {
		t.Fatalf("token: %d", w.Code)
	}
	f.srv.SetFaults(Faults{Rate: 1, Status: http.StatusTooManyRequests, RetryAfter: 2 * time.Second})
	f.do(formReq(tsTokenPath, basic(appKey, appSecret), "grant_type=client_credentials"))
	f.clk.Step(time.Second)
	f.do(formReq(tsTokenPath, basic(appKey, appSecret), "grant_type=client_credentials"))  // within
	f.do(formReq(tsTokenPath, basic(otherKey, otherSec), "grant_type=client_credentials")) // another subject
	f.clk.Step(2 * time.Second)
	f.do(formReq(tsTokenPath, basic(appKey, appSecret), "grant_type=client_credentials")) // after

	l := f.srv.Ledger()
	if len(l.Calls) != 5 {
		t.Fatalf("%d calls recorded, want 5", len(l.Calls))
	}
	c0 := l.Calls[0]
	if c0.Subject != "ts:"+appKey || c0.Status != http.StatusOK || len(c0.Issued) != 1 || c0.Route != tokenRoute {
		t.Errorf("first call recorded as %+v", c0)
	}
	if l.Calls[1].RetryAfter != 2*time.Second || l.Calls[1].Chaos != "fault" {
		t.Errorf("faulted call: retryAfter %v chaos %q", l.Calls[1].RetryAfter, l.Calls[1].Chaos)
	}
	want := []bool{false, false, true, false, false}
	for i, c := range l.Calls {
		if c.WithinRetryAfter != want[i] {
			t.Errorf("call %d (%s at +%v): withinRetryAfter %v, want %v", i, c.Subject, c.At.Sub(epoch), c.WithinRetryAfter, want[i])
		}
	}
	live := f.srv.Live([]string{c0.Issued[0], "nope", ""})
	if !live[0] || live[1] || live[2] {
		t.Errorf("Live = %v, want [true false false]", live)
	}
}

// A dropped answer is applied (the token is issued and live) but the client gets no response; a held
// one arrives after the hold.
func TestChaosDropAppliesThenResets(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Ledger = true })
	f.srv.SetChaos(Chaos{DropRate: 1})
	srv := httptest.NewServer(f.srv)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+tsTokenPath, strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Authorization", basic(appKey, appSecret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("dropped request answered %d", resp.StatusCode)
	}
	// The call is in the ledger before the connection is reset: read it at once, no waiting.
	l := f.srv.Ledger()
	if len(l.Calls) != 1 || l.Calls[0].Chaos != "drop" || l.Calls[0].Status != 0 {
		t.Fatalf("ledger %+v, want one dropped call", l.Calls)
	}
	// Applied: the token the client never saw was issued and is live.
	if c := l.Calls[0]; len(c.Issued) != 1 || !f.srv.Live(c.Issued)[0] {
		t.Fatalf("dropped call issued %d credentials (live %v), want one live token", len(c.Issued), f.srv.Live(c.Issued))
	}
	if err := (Chaos{DropRate: 0.7, HoldRate: 0.7}).Validate(); err == nil {
		t.Error("rates above 1 together accepted")
	}
}

// An answer held past the client's patience is applied too, and the ledger names what it issued: the
// chaos suite dated a token first issued by such an answer by the next call's (seed 66 at 39bcd58).
func TestChaosHeldPastTheTimeoutStillNamesWhatItIssued(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Ledger = true })
	f.srv.SetChaos(Chaos{HoldRate: 1, Hold: time.Minute})
	srv := httptest.NewServer(f.srv)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+tsTokenPath, strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Authorization", basic(appKey, appSecret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("held request answered %d", resp.StatusCode)
	}
	var l Ledger
	deadline := time.Now().Add(5 * time.Second)
	for l = f.srv.Ledger(); len(l.Calls) == 0 && time.Now().Before(deadline); l = f.srv.Ledger() {
		time.Sleep(10 * time.Millisecond)
	}
	if len(l.Calls) != 1 || l.Calls[0].Chaos != "hold" || l.Calls[0].Status != statusClientClosed {
		t.Fatalf("ledger %+v, want one held call the client gave up on", l.Calls)
	}
	if c := l.Calls[0]; len(c.Issued) != 1 || !f.srv.Live(c.Issued)[0] {
		t.Fatalf("held call issued %d credentials (live %v), want one live token", len(c.Issued), f.srv.Live(c.Issued))
	}
}
