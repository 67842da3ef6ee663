package callback

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"
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

// Every answer, whatever its status, forbids framing and caching and sends no referrer; past the rate
// the server answers 429 without calling the handler, and counts it.
func TestProtectHeadersAndRateLimit(t *testing.T) {
	calls := 0
	h := Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		switch r.URL.Path {
		case Path:
			w.WriteHeader(http.StatusBadRequest)
		case StartPath:
			w.Header().Set("Location", "https://verizon.example/")
			w.WriteHeader(http.StatusSeeOther)
		default:
			http.NotFound(w, r)
		}
	}), rate.NewLimiter(rate.Every(time.Hour), 3))
	before := testutil.ToFloat64(RejectedTotal.WithLabelValues(endpointCallback, reasonRateLimited))
	for i, c := range []struct {
		path string
		want int
	}{{Path, 400}, {StartPath, 303}, {"/other", 404}, {Path, 429}, {StartPath, 429}} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, c.path, nil))
		if w.Code != c.want {
			t.Errorf("%d %s: %d, want %d", i, c.path, w.Code, c.want)
		}
		for k, v := range map[string]string{
			"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'", "X-Frame-Options": "DENY",
			"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
		} {
			if got := w.Header().Get(k); got != v {
				t.Errorf("%d %s: %s = %q, want %q", i, c.path, k, got, v)
			}
		}
	}
	if calls != 3 {
		t.Errorf("the handler saw %d requests, want 3 (the rest were over the rate)", calls)
	}
	if got := testutil.ToFloat64(RejectedTotal.WithLabelValues(endpointCallback, reasonRateLimited)) - before; got != 1 {
		t.Errorf("rate_limited counted %v times on the callback", got)
	}
}

// The server's limits as configured: timeouts and header bound set, and no more connections served
// at once than MaxConnections (a further one waits until one closes).
func TestServerLimits(t *testing.T) {
	srv := (&Server{}).HTTPServer(context.Background())
	for name, c := range map[string]struct{ got, want time.Duration }{
		"ReadHeaderTimeout": {srv.ReadHeaderTimeout, ReadHeaderTimeout}, "ReadTimeout": {srv.ReadTimeout, ReadTimeout},
		"WriteTimeout": {srv.WriteTimeout, WriteTimeout}, "IdleTimeout": {srv.IdleTimeout, IdleTimeout},
	} {
		if c.got != c.want || c.got <= 0 {
			t.Errorf("%s = %v, want %v", name, c.got, c.want)
		}
	}
	if srv.MaxHeaderBytes != MaxHeaderBytes || MaxHeaderBytes > 64<<10 {
		t.Errorf("MaxHeaderBytes = %d", srv.MaxHeaderBytes)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var open atomic.Int32
	s := &Server{Listener: ln, MaxConnections: 2, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		open.Add(1)
		<-release
	})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for range 3 {
		go func() {
			if resp, err := client.Get("http://" + ln.Addr().String() + Path); err == nil {
				_ = resp.Body.Close()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	if n := open.Load(); n != 2 {
		t.Errorf("%d requests served at once, want the cap of 2", n)
	}
	close(release)
	time.Sleep(200 * time.Millisecond)
	if n := open.Load(); n != 3 {
		t.Errorf("%d requests served after release, want 3", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
