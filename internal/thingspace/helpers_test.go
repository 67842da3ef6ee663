package thingspace

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/credops/thingspace-operator/internal/upstream/upstreamtest"
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
type recorder = upstreamtest.Recorder

func newServer(t *testing.T, h http.Handler) *httptest.Server { return upstreamtest.NewServer(t, h) }

// newTestClient returns a client for srv with an observer and a fake clock at testNow.
func newTestClient(t *testing.T, srv *httptest.Server, opts ...Option) (*Client, *recorder) {
	t.Helper()
	rec := &recorder{}
	all := append([]Option{WithObserver(rec.Observe), WithClock(testingclock.NewFakePassiveClock(testNow))}, opts...)
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
