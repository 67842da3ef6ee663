package thingspace

import (
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

const (
	testKey    = "app-key-123"
	testSecret = "Sup3rS3cret_value"
	testToken  = "tok-5f2c8a1e-9b7d"
)

var (
	testCreds = Credentials{Key: testKey, Secret: testSecret}
	testBasic = base64.StdEncoding.EncodeToString([]byte(testKey + ":" + testSecret))
	testNow   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// recorder is an upstream.Observer that remembers its calls.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) observe(endpoint, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, endpoint+" "+code)
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// expectObserved fails unless the observer saw exactly want.
func (r *recorder) expect(t *testing.T, want ...string) {
	t.Helper()
	got := r.get()
	if len(got) != len(want) {
		t.Fatalf("observer calls = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("observer calls = %q, want %q", got, want)
		}
	}
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// newTestClient returns a client for srv with an observer and a fake clock at testNow.
func newTestClient(t *testing.T, srv *httptest.Server, opts ...Option) (*Client, *recorder) {
	t.Helper()
	rec := &recorder{}
	all := append([]Option{WithObserver(rec.observe), WithClock(testingclock.NewFakePassiveClock(testNow))}, opts...)
	c, err := New(srv.URL, srv.Client(), all...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, rec
}

// respond answers every request with status, headers and body.
func respond(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		if body != "" && w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}
