package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /healthz always, /readyz while a credential is held, /metrics with the proxy's series.
func TestHealthHandler(t *testing.T) {
	m := NewMetrics(nil)
	notReady := errors.New("credential expired")
	ln := listen(t)
	srv := NewHealthServer(HealthHandler(func(context.Context) error { return notReady }, m.Registry), nil)
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
	base := "http://" + ln.Addr().String()

	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || strings.Contains(body, "expired") {
		t.Errorf("/readyz without a credential: %d %q, want 503 with the fixed text", code, body)
	}
	notReady = nil
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with a credential: %d", code)
	}
	m.Held(time.Now().Add(-time.Minute), time.Unix(1700000000, 0))
	code, body := get(t, base+"/metrics")
	for _, want := range []string{
		`thingspace_proxy_requests_total{code="2xx",source="upstream"} 0`,
		`thingspace_proxy_retries_total 0`,
		`thingspace_proxy_refused_requests_total{reason="connect"} 0`,
		`thingspace_proxy_credential_expiry_timestamp_seconds 1.7e+09`,
		`thingspace_proxy_credential_changes_total 1`,
		`thingspace_proxy_credential_age_seconds `,
	} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}
}

// SIGTERM (ctx ending) lets the request in flight finish, then Serve returns nil; new
// connections are refused.
func TestServeShutsDownGracefully(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = w.Write([]byte("done"))
	})
	pl, hl := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServeOptions{Proxy: slow, Health: http.NotFoundHandler(), ProxyListener: pl, HealthListener: hl,
			UpstreamTimeout: time.Second, ShutdownTimeout: 5 * time.Second})
	}()
	type result struct {
		code int
		body string
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + pl.Addr().String() + "/x")
		if err != nil {
			got <- result{body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		got <- result{resp.StatusCode, string(b)}
	}()
	<-started
	cancel()
	// Shutdown closes the listeners first; the request in flight is still being served.
	for range 100 {
		c, err := net.Dial("tcp", pl.Addr().String())
		if err != nil {
			break
		}
		_ = c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v with a request in flight", err)
	default:
	}
	close(release)
	if r := <-got; r.code != http.StatusOK || r.body != "done" {
		t.Errorf("request in flight got %d %q, want 200 done", r.code, r.body)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// Headers are bounded: a request with more than 64 KiB of them is answered 431 unserved.
func TestProxyServerBoundsHeaders(t *testing.T) {
	var served bool
	ln := listen(t)
	srv := NewProxyServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = true }), time.Second, nil)
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/api/x", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 80<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || served {
		t.Errorf("80 KiB of headers: status %d, served %v; want 431 unserved", resp.StatusCode, served)
	}
}
