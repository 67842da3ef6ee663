package thingspace

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
)

func TestTokenOversizedBody(t *testing.T) {
	body := `{"access_token":"t","expires_in":3600,"pad":"` + strings.Repeat("x", int(upstream.DefaultBodyLimit)) + `"}`
	srv := newServer(t, respond(200, body))
	c, rec := newTestClient(t, srv)
	_, err := c.Token(t.Context(), testCreds, "")
	if !errors.Is(err, upstream.ErrBodyTooLarge) || !upstream.IsTransient(err) {
		t.Fatalf("err = %v, want transient ErrBodyTooLarge", err)
	}
	rec.Expect(t, "token 200")
}

// blockingHandler holds the request until the client gives up (or 10s pass).
func blockingHandler(w http.ResponseWriter, r *http.Request) {
	// Consume the body: only then does the server watch the connection and cancel r.Context()
	// when the client hangs up.
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

func TestTokenTimeout(t *testing.T) {
	srv := newServer(t, http.HandlerFunc(blockingHandler))

	t.Run("WithRequestTimeout", func(t *testing.T) {
		c, rec := newTestClient(t, srv, WithRequestTimeout(50*time.Millisecond))
		start := time.Now()
		_, err := c.Token(t.Context(), testCreds, "")
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Fatalf("took %v, the request timeout did not apply", elapsed)
		}
		if !upstream.IsTransient(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want transient deadline exceeded", err)
		}
		if !strings.Contains(err.Error(), "timeout") {
			t.Errorf("message %q does not say timeout", err)
		}
		rec.Expect(t, "token error")
	})

	t.Run("earlier caller deadline wins", func(t *testing.T) {
		c, rec := newTestClient(t, srv, WithRequestTimeout(time.Minute))
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := c.Revoke(ctx, testCreds, testToken)
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Fatalf("took %v, the caller's deadline was ignored", elapsed)
		}
		if !upstream.IsTransient(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		rec.Expect(t, "revoke error")
	})

	t.Run("default is bounded", func(t *testing.T) {
		c, _ := newTestClient(t, srv, WithRequestTimeout(0))
		if c.timeout != DefaultRequestTimeout {
			t.Errorf("timeout = %v, want %v", c.timeout, DefaultRequestTimeout)
		}
	})
}

func TestCanceledContext(t *testing.T) {
	var hits atomic.Int32
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	c, rec := newTestClient(t, srv)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.Token(ctx, testCreds, "")
	if !errors.Is(err, context.Canceled) || !upstream.IsTransient(err) {
		t.Fatalf("err = %v, want transient context.Canceled", err)
	}
	if hits.Load() != 0 {
		t.Error("a canceled call reached the server")
	}
	rec.Expect(t, "token error")
}

func TestNetworkError(t *testing.T) {
	srv := newServer(t, respond(200, `{}`))
	c, rec := newTestClient(t, srv)
	srv.Close()
	for _, call := range []func() error{
		func() error { _, err := c.Token(t.Context(), testCreds, ""); return err },
		func() error { return c.Revoke(t.Context(), testCreds, testToken) },
	} {
		err := call()
		var ue *upstream.Error
		if !errors.As(err, &ue) || ue.Kind != upstream.Transient || ue.StatusCode != 0 {
			t.Fatalf("err = %v, want transient transport error", err)
		}
		var opErr *net.OpError
		if !errors.As(err, &opErr) {
			t.Errorf("cause %v not reachable with errors.As", err)
		}
	}
	rec.Expect(t, "token error", "revoke error")
}

// A 200 whose body is cut off is a failed exchange: transient, observed as "error".
func TestTruncated200(t *testing.T) {
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"access_token\":\"")
		_ = buf.Flush()
	}))
	c, rec := newTestClient(t, srv)
	_, err := c.Token(t.Context(), testCreds, "")
	if !upstream.IsTransient(err) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want transient", err)
	}
	rec.Expect(t, "token error")
}

func TestCredentialsRefusedBeforeSending(t *testing.T) {
	var hits atomic.Int32
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	c, rec := newTestClient(t, srv)
	tests := []struct {
		name  string
		creds Credentials
		token string
	}{
		{name: "empty key", creds: Credentials{Secret: testSecret}, token: testToken},
		{name: "empty secret", creds: Credentials{Key: testKey}, token: testToken},
		{name: "colon in key", creds: Credentials{Key: "a:b", Secret: testSecret}, token: testToken},
		{name: "newline in secret", creds: Credentials{Key: testKey, Secret: testSecret + "\n"}, token: testToken},
		{name: "empty token to revoke", creds: testCreds, token: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := []error{c.Revoke(t.Context(), tt.creds, tt.token)}
			if tt.token != "" {
				_, err := c.Token(t.Context(), tt.creds, "")
				errs = append(errs, err)
			}
			for _, err := range errs {
				var ue *upstream.Error
				if !errors.As(err, &ue) || ue.Kind != upstream.Invalid || ue.StatusCode != 0 {
					t.Errorf("err = %v, want Invalid with no status", err)
				}
				if err != nil && strings.Contains(err.Error(), testSecret) {
					t.Errorf("message %q leaks the secret", err)
				}
			}
		})
	}
	if hits.Load() != 0 {
		t.Errorf("server got %d requests for credentials that cannot be sent", hits.Load())
	}
	rec.Expect(t)
}

func TestRevoke(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		handler http.HandlerFunc
	}{
		{name: "no body, token in a header", status: 200, handler: respond(200, "", "X-Revoked-Token", testToken)},
		{name: "no content", status: 204, handler: respond(204, "")},
		{name: "unexpected body", status: 200, handler: respond(200, `not json at all`)},
		{name: "oversized body is ignored", status: 202, handler: respond(202, strings.Repeat("x", 4*int(upstream.DefaultBodyLimit)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen seenRequest
			srv := newServer(t, capture(&seen, tt.handler))
			c, rec := newTestClient(t, srv)
			if err := c.Revoke(t.Context(), testCreds, testToken); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if seen.method != http.MethodPost || seen.path != "/api/ts/v1/oauth2/revoke" {
				t.Errorf("request %s %s", seen.method, seen.path)
			}
			if seen.authorization != "Basic "+testBasic || seen.contentType != "application/x-www-form-urlencoded" {
				t.Error("revoke must send Basic credentials and a form body")
			}
			want := url.Values{"grant_type": {"client_credentials"}, "token": {testToken}}
			if seen.form.Encode() != want.Encode() {
				t.Errorf("form = %q", seen.form.Encode())
			}
			rec.Expect(t, "revoke "+strconv.Itoa(tt.status))
		})
	}
}
