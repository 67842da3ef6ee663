package cloudapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
	"github.com/credops/thingspace-operator/internal/upstream/upstreamtest"
)

// tokenErrorCases: how the token endpoint's error answers are sorted.
var tokenErrorCases = []struct {
	name           string
	status         int
	body           string
	headers        []string
	kind           upstream.Kind
	code           string
	retryAfter     time.Duration
	reauth, client bool
}{
	{name: "400 invalid_grant", status: 400, body: `{"error":"invalid_grant","error_description":"refresh token expired"}`, kind: upstream.Rejected, code: "invalid_grant", reauth: true},
	{name: "401 invalid_grant", status: 401, body: `{"error":"invalid_grant"}`, kind: upstream.Rejected, code: "invalid_grant", reauth: true},
	{name: "403 invalid_grant", status: 403, body: `{"error":"invalid_grant"}`, kind: upstream.Rejected, code: "invalid_grant", reauth: true},
	{name: "401 without a body", status: 401, kind: upstream.Rejected, reauth: true},
	{name: "401 unknown code dropped", status: 401, body: `{"error":"token_revoked"}`, kind: upstream.Rejected, reauth: true},
	{name: "401 invalid_client", status: 401, body: `{"error":"invalid_client"}`, kind: upstream.Rejected, code: "invalid_client", client: true},
	{name: "400 invalid_client", status: 400, body: `{"error":"invalid_client"}`, kind: upstream.Rejected, code: "invalid_client", client: true},
	{name: "400 unauthorized_client", status: 400, body: `{"error":"unauthorized_client"}`, kind: upstream.Rejected, code: "unauthorized_client"}, // issue 8 scenario 10: not unambiguous enough to stop
	{name: "403 unauthorized_client", status: 403, body: `{"error":"unauthorized_client"}`, kind: upstream.Rejected, code: "unauthorized_client"},
	{name: "403 without a code", status: 403, kind: upstream.Rejected},
	{name: "401 invalid_request", status: 401, body: `{"error":"invalid_request"}`, kind: upstream.Rejected, code: "invalid_request"},
	{name: "400 invalid_request", status: 400, body: `{"error":"invalid_request"}`, kind: upstream.Invalid, code: "invalid_request"},
	{name: "400 unsupported_grant_type", status: 400, body: `{"error":"unsupported_grant_type"}`, kind: upstream.Invalid, code: "unsupported_grant_type"},
	{name: "400 not json", status: 400, body: `Bad Request`, headers: []string{"Content-Type", "text/plain"}, kind: upstream.Invalid},
	{name: "400 error not a string", status: 400, body: `{"error":{"code":"invalid_grant"}}`, kind: upstream.Invalid},
	{name: "400 temporarily_unavailable", status: 400, body: `{"error":"temporarily_unavailable"}`, kind: upstream.Transient, code: "temporarily_unavailable"},
	{name: "400 server_error", status: 400, body: `{"error":"server_error"}`, kind: upstream.Transient, code: "server_error"},
	{name: "404 wrong base path", status: 404, kind: upstream.Invalid},
	{name: "405", status: 405, kind: upstream.Invalid},
	{name: "408", status: 408, kind: upstream.Transient},
	{name: "429 retry-after seconds", status: 429, headers: []string{"Retry-After", "7"}, kind: upstream.Transient, retryAfter: 7 * time.Second},
	{name: "500 server_error", status: 500, body: `{"error":"server_error"}`, kind: upstream.Transient, code: "server_error"},
	{name: "502 html", status: 502, body: `<html>bad gateway</html>`, headers: []string{"Content-Type", "text/html"}, kind: upstream.Transient},
	{name: "503 invalid_grant is still transient", status: 503, body: `{"error":"invalid_grant"}`, kind: upstream.Transient, code: "invalid_grant"},
	{name: "503 retry-after http-date", status: 503, headers: []string{"Retry-After", testNow.Add(90 * time.Second).Format(http.TimeFormat)}, kind: upstream.Transient, retryAfter: 90 * time.Second},
	{name: "503 retry-after in the past", status: 503, headers: []string{"Retry-After", testNow.Add(-time.Minute).Format(http.TimeFormat)}, kind: upstream.Transient},
	{name: "503 retry-after garbage", status: 503, headers: []string{"Retry-After", "later"}, kind: upstream.Transient},
	{name: "401 oversized body classified by status alone", status: 401, body: `{"error":"invalid_client","pad":"` + strings.Repeat("x", int(upstream.DefaultBodyLimit)) + `"}`, kind: upstream.Rejected, reauth: true},
	{name: "409 unclassified", status: 409, body: `{"error":"invalid_grant"}`, kind: upstream.Unknown, code: "invalid_grant"},
}

func TestTokenErrors(t *testing.T) {
	for _, g := range grants {
		for _, tt := range tokenErrorCases {
			t.Run(g.endpoint+"/"+tt.name, func(t *testing.T) {
				srv := upstreamtest.NewServer(t, upstreamtest.Respond(tt.status, tt.body, tt.headers...))
				c, rec := newTestClient(t, srv)
				tok, err := g.call(c, t.Context(), testCreds)
				ue, ok := errors.AsType[*upstream.Error](err)
				if !ok {
					t.Fatalf("err = %v, want *upstream.Error", err)
				}
				if ue.API != API || ue.Endpoint != g.endpoint || ue.StatusCode != tt.status {
					t.Errorf("API/Endpoint/Status = %q/%q/%d", ue.API, ue.Endpoint, ue.StatusCode)
				}
				if ue.Kind != tt.kind || ue.Code != tt.code {
					t.Errorf("Kind/Code = %v/%q, want %v/%q", ue.Kind, ue.Code, tt.kind, tt.code)
				}
				if d, ok := upstream.RetryAfterOf(err); d != tt.retryAfter || ok != (tt.retryAfter > 0) {
					t.Errorf("RetryAfterOf = %v, %v; want %v", d, ok, tt.retryAfter)
				}
				if NeedsReauthorization(err) != tt.reauth || ClientRejected(err) != tt.client || Unanswered(err) {
					t.Errorf("NeedsReauthorization/ClientRejected/Unanswered = %v/%v/%v, want %v/%v/false",
						NeedsReauthorization(err), ClientRejected(err), Unanswered(err), tt.reauth, tt.client)
				}
				if tok != (Tokens{}) {
					t.Error("tokens returned with an error")
				}
				rec.Expect(t, g.endpoint+" "+strconv.Itoa(tt.status))
			})
		}
	}
}

func TestBasicHeaderEncoding(t *testing.T) {
	// Characters base64 turns into '+', '/' and padding, and that a form encoder would escape:
	// the header must be plain base64(key:secret).
	creds := Credentials{Key: "k~ey.ID", Secret: "s/e+c=r?e&t>> <"}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("k~ey.ID:s/e+c=r?e&t>> <"))
	for _, g := range grants {
		var seen seenRequest
		srv := upstreamtest.NewServer(t, capture(&seen, upstreamtest.Respond(200, `{"access_token":"a","refresh_token":"r","expires_in":60}`)))
		c, _ := newTestClient(t, srv)
		if _, err := g.call(c, t.Context(), creds); err != nil {
			t.Fatal(err)
		}
		if seen.authorization != want {
			t.Errorf("%s: Authorization = %q, want %q", g.endpoint, seen.authorization, want)
		}
		user, pass, ok := (&http.Request{Header: http.Header{"Authorization": {seen.authorization}}}).BasicAuth()
		if !ok || user != creds.Key || pass != creds.Secret {
			t.Errorf("%s: the server cannot decode the Basic credentials", g.endpoint)
		}
	}
}

func TestArgumentsRefusedBeforeSending(t *testing.T) {
	var hits atomic.Int32
	srv := upstreamtest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	c, rec := newTestClient(t, srv)
	calls := map[string]func() error{
		"exchange: empty key": func() error {
			_, err := c.Exchange(t.Context(), Credentials{Secret: testSecret}, testCode, testRedirect)
			return err
		},
		"exchange: colon in key": func() error {
			_, err := c.Exchange(t.Context(), Credentials{Key: "a:b", Secret: testSecret}, testCode, testRedirect)
			return err
		},
		"exchange: empty code": func() error {
			_, err := c.Exchange(t.Context(), testCreds, "", testRedirect)
			return err
		},
		"exchange: code with a newline": func() error {
			_, err := c.Exchange(t.Context(), testCreds, testCode+"\n", testRedirect)
			return err
		},
		"exchange: empty redirect URI": func() error {
			_, err := c.Exchange(t.Context(), testCreds, testCode, "")
			return err
		},
		"refresh: empty secret": func() error {
			_, err := c.Refresh(t.Context(), Credentials{Key: testKey}, testRefreshToken)
			return err
		},
		"refresh: secret with a newline": func() error {
			_, err := c.Refresh(t.Context(), Credentials{Key: testKey, Secret: testSecret + "\n"}, testRefreshToken)
			return err
		},
		"refresh: empty refresh token": func() error {
			_, err := c.Refresh(t.Context(), testCreds, "")
			return err
		},
		"refresh: refresh token with a newline": func() error {
			_, err := c.Refresh(t.Context(), testCreds, testRefreshToken+"\n")
			return err
		},
		"account: empty access token":        func() error { return c.Account(t.Context(), "") },
		"account: access token with a space": func() error { return c.Account(t.Context(), "a b") },
		"account: access token with CRLF":    func() error { return c.Account(t.Context(), testAccessToken+"\r\nX: 1") },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			ue, ok := errors.AsType[*upstream.Error](err)
			if !ok || ue.Kind != upstream.Invalid || ue.StatusCode != 0 || ue.API != API {
				t.Fatalf("err = %v, want Invalid with no status", err)
			}
			for _, s := range []string{testSecret, testCode, testRefreshToken, testAccessToken} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("message %q quotes an argument", err)
				}
			}
			if NeedsReauthorization(err) || ClientRejected(err) || Unanswered(err) {
				t.Error("an argument refused before sending says nothing about the grant")
			}
		})
	}
	if hits.Load() != 0 {
		t.Errorf("server got %d requests for arguments that cannot be sent", hits.Load())
	}
	rec.Expect(t)
}

func TestAccount(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		status  int
		kind    upstream.Kind
		ok      bool
	}{
		{name: "200 body ignored", handler: upstreamtest.Respond(200, `{"anything":true}`), status: 200, ok: true},
		{name: "204", handler: upstreamtest.Respond(204, ""), status: 204, ok: true},
		{name: "200 oversized body ignored", handler: upstreamtest.Respond(200, strings.Repeat("x", 4*int(upstream.DefaultBodyLimit))), status: 200, ok: true},
		{name: "401 invalid_token", handler: upstreamtest.Respond(401, `{"error":"invalid_token"}`), status: 401, kind: upstream.Rejected},
		{name: "401 no body", handler: upstreamtest.Respond(401, ""), status: 401, kind: upstream.Rejected},
		{name: "403", handler: upstreamtest.Respond(403, ""), status: 403, kind: upstream.Rejected},
		{name: "404", handler: upstreamtest.Respond(404, ""), status: 404, kind: upstream.Invalid},
		{name: "429", handler: upstreamtest.Respond(429, "", "Retry-After", "3"), status: 429, kind: upstream.Transient},
		{name: "503", handler: upstreamtest.Respond(503, ""), status: 503, kind: upstream.Transient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen seenRequest
			srv := upstreamtest.NewServer(t, capture(&seen, tt.handler))
			c, rec := newTestClient(t, srv)
			err := c.Account(t.Context(), testAccessToken)
			if seen.method != http.MethodGet || seen.path != "/cloud/1/account" || seen.authorization != "Bearer "+testAccessToken {
				t.Errorf("request %s %s, Authorization %q", seen.method, seen.path, seen.authorization)
			}
			rec.Expect(t, EndpointAccount+" "+strconv.Itoa(tt.status))
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			ue, ok := errors.AsType[*upstream.Error](err)
			if !ok || ue.Kind != tt.kind || ue.Endpoint != EndpointAccount || ue.StatusCode != tt.status {
				t.Fatalf("err = %v, want %v", err, tt.kind)
			}
			// A refused access token is not a dead grant: refresh, then retry.
			if NeedsReauthorization(err) || ClientRejected(err) {
				t.Error("an account error must not ask for reauthorization or blame the client")
			}
		})
	}
}

func TestUnanswered(t *testing.T) {
	t.Run("connection closed after the request was read", func(t *testing.T) {
		for _, g := range grants {
			srv := upstreamtest.NewServer(t, upstreamtest.Raw(t, ""))
			c, rec := newTestClient(t, srv)
			_, err := g.call(c, t.Context(), testCreds)
			if !Unanswered(err) || !upstream.IsTransient(err) || NeedsReauthorization(err) {
				t.Fatalf("%s: err = %#v, want Unanswered and transient", g.endpoint, err)
			}
			rec.Expect(t, g.endpoint+" error")
		}
	})

	t.Run("client timeout after the request was written", func(t *testing.T) {
		srv := upstreamtest.NewServer(t, http.HandlerFunc(upstreamtest.Block))
		c, rec := newTestClient(t, srv, WithRequestTimeout(50*time.Millisecond))
		_, err := c.Refresh(t.Context(), testCreds, testRefreshToken)
		if !Unanswered(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %#v, want an Unanswered timeout", err)
		}
		rec.Expect(t, "refresh error")
	})

	t.Run("answer cut off", func(t *testing.T) {
		srv := upstreamtest.NewServer(t, upstreamtest.Raw(t,
			"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"access_token\":\""))
		c, rec := newTestClient(t, srv)
		if _, err := c.Refresh(t.Context(), testCreds, testRefreshToken); !Unanswered(err) {
			t.Fatalf("err = %#v, want Unanswered", err)
		}
		rec.Expect(t, "refresh error")
	})

	t.Run("connection refused", func(t *testing.T) {
		rec := &upstreamtest.Recorder{}
		c, err := New(upstreamtest.RefusedURL(t)+"/cloud/1", nil, WithObserver(rec.Observe))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Refresh(t.Context(), testCreds, testRefreshToken)
		var opErr *net.OpError
		if Unanswered(err) || !upstream.IsTransient(err) || !errors.As(err, &opErr) {
			t.Fatalf("err = %#v, want transient, not Unanswered", err)
		}
		rec.Expect(t, "refresh error")
	})

	t.Run("canceled before sending", func(t *testing.T) {
		srv := upstreamtest.NewServer(t, upstreamtest.Respond(200, `{}`))
		c, rec := newTestClient(t, srv)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := c.Refresh(ctx, testCreds, testRefreshToken); Unanswered(err) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %#v, want canceled, not Unanswered", err)
		}
		rec.Expect(t, "refresh error")
	})

	t.Run("only this package's errors", func(t *testing.T) {
		other := &upstream.Error{API: "thingspace", Endpoint: "token", Kind: upstream.Transient, Unanswered: true}
		if Unanswered(other) {
			t.Error("Unanswered must be about cloud calls")
		}
		if Unanswered(nil) || Unanswered(errors.New("x")) || NeedsReauthorization(nil) || ClientRejected(nil) {
			t.Error("nil or foreign errors")
		}
		wrapped := fmt.Errorf("reconcile: %w", &upstream.Error{API: API, Endpoint: EndpointRefresh, StatusCode: 400, Code: "invalid_grant", Kind: upstream.Rejected})
		if !NeedsReauthorization(wrapped) {
			t.Error("wrapped errors are recognised")
		}
		account := &upstream.Error{API: API, Endpoint: EndpointAccount, StatusCode: 401, Kind: upstream.Rejected}
		if NeedsReauthorization(account) {
			t.Error("an account 401 is not about the grant")
		}
		tsErr := &upstream.Error{API: "thingspace", Endpoint: EndpointRefresh, StatusCode: 401, Kind: upstream.Rejected, Code: "invalid_client"}
		if NeedsReauthorization(tsErr) || ClientRejected(tsErr) {
			t.Error("another API's errors")
		}
	})
}
