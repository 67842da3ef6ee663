// Package upstreamtest holds test helpers for the upstream API clients: an Observer that records,
// fake servers (quiet, canned, hijacking, blocking, refusing), and a leak check that renders a
// value in every way a log line, an event or a status can.
//
// It imports nothing of the operator, so package upstream's own tests can use it.
package upstreamtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Recorder is an upstream.Observer (pass its Observe method) that remembers its calls as
// "endpoint code".
type Recorder struct {
	mu    sync.Mutex
	calls []string
}

// Observe records one call.
func (r *Recorder) Observe(endpoint, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, endpoint+" "+code)
}

// Expect fails t unless the calls so far are exactly want.
func (r *Recorder) Expect(t testing.TB, want ...string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if strings.Join(r.calls, "\n") != strings.Join(want, "\n") || len(r.calls) != len(want) {
		t.Fatalf("observer calls = %q, want %q", r.calls, want)
	}
}

// NewServer starts an HTTP test server for h with its error log silenced (expected failures are
// noise), closed when the test ends.
func NewServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// Respond answers every request with status, headers (name, value pairs) and body; a body
// without a Content-Type is sent as JSON.
func Respond(status int, body string, headers ...string) http.HandlerFunc {
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

// Raw reads the request in full, writes raw (an HTTP response, whole, broken or cut off, or
// nothing) straight onto the connection and closes it.
func Raw(t testing.TB, raw string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString(raw)
		_ = buf.Flush()
	}
}

// Block reads the request in full and holds it until the client gives up (or 10s pass).
func Block(w http.ResponseWriter, r *http.Request) {
	// Only once the body is consumed does the server watch the connection and cancel
	// r.Context() when the client hangs up.
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

// RefusedURL returns an http URL on which nothing listens: connecting to it is refused.
func RefusedURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

// Needles are strings that must never appear in anything a client lets a caller print.
type Needles []string

// In returns the needles s contains.
func (n Needles) In(s string) []string {
	var found []string
	for _, needle := range n {
		if strings.Contains(s, needle) {
			found = append(found, needle)
		}
	}
	return found
}

// CheckDetector fails t unless In finds every needle, and nothing in a clean string: otherwise
// a leak test proves nothing.
func (n Needles) CheckDetector(t testing.TB) {
	t.Helper()
	for _, needle := range n {
		if len(n.In("prefix "+needle+" suffix")) == 0 {
			t.Fatalf("detector misses %q", needle)
		}
	}
	if len(n.In("nothing here")) != 0 {
		t.Fatal("detector false positive")
	}
}

// CheckRenderings fails t for every rendering of v that contains a needle: fmt with every verb,
// JSON, slog's JSON and text handlers, logr's MarshalLog and slog's LogValue where v has them.
func (n Needles) CheckRenderings(t testing.TB, v any) {
	t.Helper()
	var renderings []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3v", "%T"} {
		renderings = append(renderings, fmt.Sprintf(verb, v))
	}
	renderings = append(renderings, MustJSON(t, v), fmt.Sprint(v), fmt.Sprintln(v))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("msg", "value", v)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("msg", "value", v)
	renderings = append(renderings, buf.String())
	if m, ok := v.(interface{ MarshalLog() any }); ok {
		renderings = append(renderings, MustJSON(t, m.MarshalLog()), fmt.Sprintf("%+v", m.MarshalLog()), fmt.Sprintf("%#v", m.MarshalLog()))
	}
	if lv, ok := v.(slog.LogValuer); ok {
		renderings = append(renderings, lv.LogValue().Resolve().String())
	}
	if err, ok := v.(error); ok {
		wrapped := fmt.Errorf("reconcile: %w", err)
		renderings = append(renderings, err.Error(), wrapped.Error(), fmt.Sprintf("%#v", wrapped))
	}
	for _, s := range renderings {
		if l := n.In(s); len(l) > 0 {
			t.Errorf("rendering %q leaks %q", s, l)
		}
	}
}

// MustJSON returns v as JSON, failing t if it cannot be encoded.
func MustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	return string(b)
}
