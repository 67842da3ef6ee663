package callback

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// Issue 8 scenario 18: the callback server used to hold shutdown for up to 30 s of the manager's 45 s
// graceful budget while a request was open, the budget the reconcilers' in-flight refreshes need. Its
// drain is bounded by DrainTimeout; the code exchanges that must finish are waited for through
// internal/inflight, not through the server. (Before the fix the same test against
// controller.CallbackServer failed: "held shutdown for more than 10s with a request open".)
func TestIssue8Scenario18ServerDrainIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	srv := &Server{Listener: ln, DrainTimeout: 500 * time.Millisecond,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release })}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	go func() {
		if resp, err := http.Get("http://" + ln.Addr().String() + Path); err == nil {
			_ = resp.Body.Close()
		}
	}()
	time.Sleep(200 * time.Millisecond)
	began := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Fatalf("shutdown took %v", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the callback server held shutdown for more than 10s with a request open")
	}
	if (&Server{}).NeedLeaderElection() {
		t.Error("the callback must run on every replica")
	}
}

func TestServerServesAndStops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Listener: ln, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	resp, err := http.Get("http://" + ln.Addr().String() + Path)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
