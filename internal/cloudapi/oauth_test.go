package cloudapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
	"github.com/credops/thingspace-operator/internal/upstream/oauth"
	"github.com/credops/thingspace-operator/internal/upstream/upstreamtest"
)

// grant is one token-endpoint call, for tables that run against both grants.
type grant struct {
	endpoint string
	call     func(c *Client, ctx context.Context, creds Credentials) (Tokens, error)
	wantForm url.Values
	wantBody string // the form as sent, in the documented order
}

var grants = []grant{
	{
		endpoint: EndpointCodeExchange,
		call: func(c *Client, ctx context.Context, creds Credentials) (Tokens, error) {
			return c.Exchange(ctx, creds, testCode, testRedirect)
		},
		wantForm: url.Values{"grant_type": {"authorization_code"}, "code": {testCode}, "redirect_uri": {testRedirect}},
		wantBody: "grant_type=authorization_code&code=" + testCode + "&redirect_uri=" + url.QueryEscape(testRedirect),
	},
	{
		endpoint: EndpointRefresh,
		call: func(c *Client, ctx context.Context, creds Credentials) (Tokens, error) {
			return c.Refresh(ctx, creds, testRefreshToken)
		},
		wantForm: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {testRefreshToken}},
		wantBody: "grant_type=refresh_token&refresh_token=" + testRefreshToken,
	},
}

func TestTokenRequestAndSuccess(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Tokens
	}{
		{
			name: "documented response",
			body: `{"access_token":"` + testAccessToken + `","refresh_token":"new-` + testRefreshToken + `","expires_in":3600,"token_type":"Bearer"}`,
			want: Tokens{AccessToken: testAccessToken, RefreshToken: "new-" + testRefreshToken, TokenType: "Bearer", ExpiresIn: time.Hour},
		},
		{
			name: "token_type defaults to Bearer; expires_in as a quoted integer",
			body: `{"access_token":"` + testAccessToken + `","refresh_token":"r 2","expires_in":"1800","scope":"x","extra":{}}`,
			want: Tokens{AccessToken: testAccessToken, RefreshToken: "r 2", TokenType: "Bearer", ExpiresIn: 30 * time.Minute},
		},
		// Issue 8 scenario 7: the rotated refresh token comes back whatever expires_in says.
		{
			name: "expires_in missing: assumed",
			body: `{"access_token":"` + testAccessToken + `","refresh_token":"r2"}`,
			want: Tokens{AccessToken: testAccessToken, RefreshToken: "r2", TokenType: "Bearer", ExpiresIn: oauth.AssumedExpiresIn, LifetimeAssumed: true},
		},
		{
			name: "expires_in null: assumed",
			body: `{"access_token":"` + testAccessToken + `","refresh_token":"r2","expires_in":null}`,
			want: Tokens{AccessToken: testAccessToken, RefreshToken: "r2", TokenType: "Bearer", ExpiresIn: oauth.AssumedExpiresIn, LifetimeAssumed: true},
		},
		{
			name: "expires_in zero: expired now",
			body: `{"access_token":"` + testAccessToken + `","refresh_token":"r2","expires_in":0}`,
			want: Tokens{AccessToken: testAccessToken, RefreshToken: "r2", TokenType: "Bearer"},
		},
		{
			name: "expires_in fractional",
			body: `{"access_token":"` + testAccessToken + `","refresh_token":"r2","expires_in":1.5}`,
			want: Tokens{AccessToken: testAccessToken, RefreshToken: "r2", TokenType: "Bearer", ExpiresIn: 1500 * time.Millisecond},
		},
		// Issue 8 scenario 18.
		{
			name: "expires_in huge: capped",
			body: `{"access_token":"` + testAccessToken + `","refresh_token":"r2","expires_in":1e20}`,
			want: Tokens{AccessToken: testAccessToken, RefreshToken: "r2", TokenType: "Bearer", ExpiresIn: oauth.MaxExpiresIn, LifetimeCapped: true},
		},
		{
			name: "other token_type kept",
			body: `{"access_token":"` + testAccessToken + `","refresh_token":"r","expires_in":60.0,"token_type":"bearer"}`,
			want: Tokens{AccessToken: testAccessToken, RefreshToken: "r", TokenType: "bearer", ExpiresIn: time.Minute},
		},
	}
	for _, g := range grants {
		for _, tt := range tests {
			t.Run(g.endpoint+"/"+tt.name, func(t *testing.T) {
				var seen seenRequest
				srv := upstreamtest.NewServer(t, capture(&seen, upstreamtest.Respond(200, tt.body)))
				c, rec := newTestClient(t, srv)
				got, err := g.call(c, t.Context(), testCreds)
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("tokens = %#v, want %#v", got, tt.want)
				}
				if got.AccessToken != tt.want.AccessToken || got.RefreshToken != tt.want.RefreshToken {
					t.Error("token values differ") // %#v above is redacted, so say it plainly
				}
				if seen.method != http.MethodPost || seen.path != "/cloud/1/oauth2/token" {
					t.Errorf("request %s %s", seen.method, seen.path)
				}
				if seen.contentType != "application/x-www-form-urlencoded" || seen.accept != "application/json" || seen.userAgent == "" {
					t.Errorf("headers: Content-Type %q, Accept %q, User-Agent %q", seen.contentType, seen.accept, seen.userAgent)
				}
				if seen.authorization != "Basic "+testBasic {
					t.Errorf("Authorization = %q, want Basic base64(key:secret)", seen.authorization)
				}
				if seen.form.Encode() != g.wantForm.Encode() || seen.rawBody != g.wantBody {
					t.Errorf("body %q, want %q", seen.rawBody, g.wantBody)
				}
				rec.Expect(t, g.endpoint+" 200")
			})
		}
	}
}

// A refresh answered without a refresh token leaves RefreshToken empty: the caller keeps the old
// one. An exchange must return one; without it the answer is malformed.
func TestMissingRefreshToken(t *testing.T) {
	for _, body := range []string{
		`{"access_token":"` + testAccessToken + `","expires_in":3600}`,
		`{"access_token":"` + testAccessToken + `","expires_in":3600,"refresh_token":""}`,
		`{"access_token":"` + testAccessToken + `","expires_in":3600,"refresh_token":null}`,
	} {
		t.Run(body, func(t *testing.T) {
			srv := upstreamtest.NewServer(t, upstreamtest.Respond(200, body))
			c, rec := newTestClient(t, srv)
			tok, err := c.Refresh(t.Context(), testCreds, testRefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			if tok.RefreshToken != "" || tok.AccessToken != testAccessToken || tok.ExpiresIn != time.Hour || tok.TokenType != "Bearer" {
				t.Errorf("tokens %v", tok)
			}
			_, err = c.Exchange(t.Context(), testCreds, testCode, testRedirect)
			if ue, ok := errors.AsType[*upstream.Error](err); !ok || ue.Kind != upstream.Transient || ue.StatusCode != 200 ||
				!strings.Contains(err.Error(), "malformed response: refresh_token missing") {
				t.Errorf("Exchange err = %v", err)
			}
			rec.Expect(t, "refresh 200", "code_exchange 200")
		})
	}
}

// partialRefresh is the refresh token a malformed 2xx of TestMalformed200IsTransient hands back.
var partialRefresh = map[string]string{
	"access_token missing": "r", "access_token empty": "r", "access_token not a string": "r",
	"access_token with space": "r", "access_token with CRLF": "r", "expires_in negative": "r", "expires_in text": "r",
}

func TestMalformed200IsTransient(t *testing.T) {
	bodies := map[string]string{
		"empty":                      ``,
		"not json":                   `<html>proxy login</html>`,
		"json array":                 `[]`,
		"access_token missing":       `{"refresh_token":"r","expires_in":3600}`,
		"access_token empty":         `{"access_token":"","refresh_token":"r","expires_in":3600}`,
		"access_token not a string":  `{"access_token":1,"refresh_token":"r","expires_in":3600}`,
		"access_token with space":    `{"access_token":"a b","refresh_token":"r","expires_in":3600}`,
		"access_token with CRLF":     `{"access_token":"a\r\nX: 1","refresh_token":"r","expires_in":3600}`,
		"expires_in negative":        `{"access_token":"a","refresh_token":"r","expires_in":-1}`,
		"expires_in text":            `{"access_token":"a","refresh_token":"r","expires_in":"soon"}`,
		"refresh_token not a string": `{"access_token":"a","refresh_token":42,"expires_in":3600}`,
		"refresh_token with newline": `{"access_token":"a","refresh_token":"r\n","expires_in":3600}`,
		"body over the limit":        `{"access_token":"a","refresh_token":"r","expires_in":3600,"pad":"` + strings.Repeat("x", int(upstream.DefaultBodyLimit)) + `"}`,
	}
	for _, g := range grants {
		for name, body := range bodies {
			t.Run(g.endpoint+"/"+name, func(t *testing.T) {
				srv := upstreamtest.NewServer(t, upstreamtest.Respond(200, body))
				c, rec := newTestClient(t, srv)
				tok, err := g.call(c, t.Context(), testCreds)
				ue, ok := errors.AsType[*upstream.Error](err)
				if !ok || ue.Kind != upstream.Transient || ue.StatusCode != 200 || ue.Endpoint != g.endpoint {
					t.Fatalf("err = %v, want a transient *upstream.Error with status 200", err)
				}
				if !strings.Contains(err.Error(), "malformed response") {
					t.Errorf("message %q", err)
				}
				// Issue 8 scenario 7: a usable refresh token comes back alone; nothing else ever does.
				if want := partialRefresh[name]; tok != (Tokens{RefreshToken: want}) {
					t.Errorf("tokens returned with the error: %v (refresh token %q, want %q)", tok, tok.RefreshToken, want)
				}
				if NeedsReauthorization(err) || ClientRejected(err) || Unanswered(err) {
					t.Error("a malformed 200 is none of NeedsReauthorization, ClientRejected, Unanswered")
				}
				rec.Expect(t, g.endpoint+" 200")
			})
		}
	}
}

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
