package thingspace

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
	"github.com/credops/thingspace-operator/internal/upstream/oauth"
)

// seenRequest is what the fake server received.
type seenRequest struct {
	method, path, contentType, authorization string
	form                                     url.Values
}

func capture(seen *seenRequest, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		*seen = seenRequest{
			method:        r.Method,
			path:          r.URL.Path,
			contentType:   r.Header.Get("Content-Type"),
			authorization: r.Header.Get("Authorization"),
			form:          r.PostForm,
		}
		next(w, r)
	}
}

func TestTokenRequestAndSuccess(t *testing.T) {
	tests := []struct {
		name      string
		scope     string
		body      string
		wantForm  url.Values
		wantToken Token
	}{
		{
			name:      "no scope",
			body:      `{"access_token":"` + testToken + `","token_type":"Bearer","expires_in":3600,"scope":"default"}`,
			wantForm:  url.Values{"grant_type": {"client_credentials"}},
			wantToken: Token{AccessToken: testToken, TokenType: "Bearer", Scope: "default", ExpiresIn: time.Hour},
		},
		{
			name:      "scope sent when set",
			scope:     "ts.application ts.mtas",
			body:      `{"access_token":"` + testToken + `","token_type":"Bearer","expires_in":3600,"scope":"ts.application ts.mtas"}`,
			wantForm:  url.Values{"grant_type": {"client_credentials"}, "scope": {"ts.application ts.mtas"}},
			wantToken: Token{AccessToken: testToken, TokenType: "Bearer", Scope: "ts.application ts.mtas", ExpiresIn: time.Hour},
		},
		{
			name:      "token_type defaults to Bearer, scope optional",
			body:      `{"access_token":"` + testToken + `","expires_in":1800}`,
			wantForm:  url.Values{"grant_type": {"client_credentials"}},
			wantToken: Token{AccessToken: testToken, TokenType: "Bearer", ExpiresIn: 30 * time.Minute},
		},
		{
			name:      "expires_in as quoted integer tolerated",
			body:      `{"access_token":"` + testToken + `","expires_in":"120"}`,
			wantForm:  url.Values{"grant_type": {"client_credentials"}},
			wantToken: Token{AccessToken: testToken, TokenType: "Bearer", ExpiresIn: 2 * time.Minute},
		},
		{
			name:      "expires_in as integral float tolerated",
			body:      `{"access_token":"` + testToken + `","expires_in":3600.0,"extra":{"ignored":true}}`,
			wantForm:  url.Values{"grant_type": {"client_credentials"}},
			wantToken: Token{AccessToken: testToken, TokenType: "Bearer", ExpiresIn: time.Hour},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen seenRequest
			srv := newServer(t, capture(&seen, respond(200, tt.body)))
			c, rec := newTestClient(t, srv)

			tok, err := c.Token(t.Context(), testCreds, tt.scope)
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			if tok != tt.wantToken {
				t.Errorf("token = %#v (ExpiresIn %v), want %#v", tok, tok.ExpiresIn, tt.wantToken)
			}
			if tok.AccessToken != tt.wantToken.AccessToken {
				t.Error("access token differs") // %#v above is redacted, so say it plainly
			}
			if seen.method != http.MethodPost || seen.path != "/api/ts/v1/oauth2/token" {
				t.Errorf("request %s %s", seen.method, seen.path)
			}
			if seen.contentType != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type %q", seen.contentType)
			}
			if seen.authorization != "Basic "+testBasic {
				t.Errorf("Authorization header is not Basic base64(key:secret)")
			}
			if seen.form.Encode() != tt.wantForm.Encode() {
				t.Errorf("form = %q, want %q", seen.form.Encode(), tt.wantForm.Encode())
			}
			rec.Expect(t, "token 200")
		})
	}
}

func TestBasicHeaderEncoding(t *testing.T) {
	// Secrets with characters that base64 turns into '+', '/' and padding, and that a form
	// encoder would escape: the header must be plain base64(key:secret).
	creds := Credentials{Key: "k~ey", Secret: "s/e+c=r?e&t>>>"}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("k~ey:s/e+c=r?e&t>>>"))
	var seen seenRequest
	srv := newServer(t, capture(&seen, respond(200, `{"access_token":"t","expires_in":60}`)))
	c, _ := newTestClient(t, srv)
	if _, err := c.Token(t.Context(), creds, ""); err != nil {
		t.Fatal(err)
	}
	if seen.authorization != want {
		t.Errorf("Authorization = %q, want %q", seen.authorization, want)
	}
	user, pass, ok := (&http.Request{Header: http.Header{"Authorization": {seen.authorization}}}).BasicAuth()
	if !ok || user != creds.Key || pass != creds.Secret {
		t.Error("server cannot decode the Basic credentials")
	}
}

// The gateway returns the same token for its hour, counting expires_in down.
func TestTokenCountdownExpiresIn(t *testing.T) {
	remaining := []string{"3600", "2999", "17"}
	var n atomic.Int32
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1) - 1
		respond(200, `{"access_token":"`+testToken+`","token_type":"Bearer","expires_in":`+remaining[i]+`}`)(w, r)
	}))
	c, rec := newTestClient(t, srv)
	for _, want := range []time.Duration{3600 * time.Second, 2999 * time.Second, 17 * time.Second} {
		tok, err := c.Token(t.Context(), testCreds, "")
		if err != nil {
			t.Fatal(err)
		}
		if tok.ExpiresIn != want || tok.AccessToken != testToken {
			t.Errorf("ExpiresIn = %v, want %v", tok.ExpiresIn, want)
		}
	}
	rec.Expect(t, "token 200", "token 200", "token 200")
}

func TestTokenMalformed200IsTransient(t *testing.T) {
	bodies := map[string]string{
		"empty":                   ``,
		"not json":                `<html>proxy login</html>`,
		"json array":              `[]`,
		"access_token missing":    `{"expires_in":3600}`,
		"access_token empty":      `{"access_token":"","expires_in":3600}`,
		"access_token not string": `{"access_token":123,"expires_in":3600}`,
		"access_token with space": `{"access_token":"a b","expires_in":3600}`,
		"access_token with CRLF":  `{"access_token":"a\r\nX-Injected: 1","expires_in":3600}`,
		"expires_in negative":     `{"access_token":"t","expires_in":-5}`,
		"expires_in text":         `{"access_token":"t","expires_in":"soon"}`,
		"expires_in bool":         `{"access_token":"t","expires_in":true}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, respond(200, body))
			c, rec := newTestClient(t, srv)
			tok, err := c.Token(t.Context(), testCreds, "")
			if err == nil {
				t.Fatalf("accepted malformed body, token %v", tok)
			}
			var ue *upstream.Error
			if !errors.As(err, &ue) || ue.Kind != upstream.Transient || ue.StatusCode != 200 {
				t.Fatalf("err = %v, want a transient *upstream.Error with status 200", err)
			}
			if !strings.Contains(err.Error(), "malformed response") {
				t.Errorf("message %q", err)
			}
			if tok != (Token{}) {
				t.Error("partial token returned with an error")
			}
			rec.Expect(t, "token 200")
		})
	}
}

// Issue 8 scenarios 7, 12 and 18: a 2xx with a token is a token, whatever its expires_in says;
// the lifetime flags tell the caller when it was assumed or capped.
func TestTokenLifetimes(t *testing.T) {
	for body, want := range map[string]Token{
		`{"access_token":"t"}`:                     {AccessToken: "t", TokenType: "Bearer", ExpiresIn: oauth.AssumedExpiresIn, LifetimeAssumed: true},
		`{"access_token":"t","expires_in":null}`:   {AccessToken: "t", TokenType: "Bearer", ExpiresIn: oauth.AssumedExpiresIn, LifetimeAssumed: true},
		`{"access_token":"t","expires_in":0}`:      {AccessToken: "t", TokenType: "Bearer"},
		`{"access_token":"t","expires_in":1.5}`:    {AccessToken: "t", TokenType: "Bearer", ExpiresIn: 1500 * time.Millisecond},
		`{"access_token":"t","expires_in":1e20}`:   {AccessToken: "t", TokenType: "Bearer", ExpiresIn: oauth.MaxExpiresIn, LifetimeCapped: true},
		`{"access_token":"t","expires_in":"3600"}`: {AccessToken: "t", TokenType: "Bearer", ExpiresIn: time.Hour},
	} {
		t.Run(body, func(t *testing.T) {
			srv := newServer(t, respond(200, body))
			c, _ := newTestClient(t, srv)
			tok, err := c.Token(t.Context(), testCreds, "")
			if err != nil || tok != want {
				t.Fatalf("Token = (%#v, %v), want %#v", tok, err, want)
			}
		})
	}
}

// errorCases is shared by Token and Revoke: both endpoints speak the same error vocabulary.
var errorCases = []struct {
	name           string
	status         int
	body           string
	headers        []string
	wantKind       upstream.Kind
	wantCode       string
	wantRetryAfter time.Duration
}{
	{name: "401 invalid_client", status: 401, body: `{"error":"invalid_client","error_description":"bad"}`, wantKind: upstream.Rejected, wantCode: "invalid_client"},
	{name: "401 fault 900902 missing credentials", status: 401, body: `{"fault":{"code":"900902","message":"Missing Credentials","description":"x"}}`, wantKind: upstream.Rejected, wantCode: "900902"},
	{name: "401 fault 900901 as a number", status: 401, body: `{"fault":{"code":900901,"message":"Invalid Credentials"}}`, wantKind: upstream.Rejected, wantCode: "900901"},
	{name: "401 no body", status: 401, wantKind: upstream.Rejected},
	{name: "401 unknown error code is not copied", status: 401, body: `{"error":"some_new_code"}`, wantKind: upstream.Rejected},
	{name: "400 invalid_request", status: 400, body: `{"error":"invalid_request","error_description":"grant_type"}`, wantKind: upstream.Invalid, wantCode: "invalid_request"},
	{name: "400 invalid_scope", status: 400, body: `{"error":"invalid_scope"}`, wantKind: upstream.Invalid, wantCode: "invalid_scope"},
	{name: "400 invalid_client", status: 400, body: `{"error":"invalid_client"}`, wantKind: upstream.Rejected, wantCode: "invalid_client"},
	{name: "400 unauthorized_client", status: 400, body: `{"error":"unauthorized_client"}`, wantKind: upstream.Rejected, wantCode: "unauthorized_client"},
	{name: "400 fault 900906 no such resource", status: 400, body: `{"fault":{"code":"900906","message":"No matching resource"}}`, wantKind: upstream.Invalid, wantCode: "900906"},
	{name: "400 not json", status: 400, body: `Bad Request`, headers: []string{"Content-Type", "text/plain"}, wantKind: upstream.Invalid},
	{name: "400 error not a string", status: 400, body: `{"error":{"code":"invalid_client"}}`, wantKind: upstream.Invalid},
	{name: "400 fault code not digits", status: 400, body: `{"fault":{"code":"90-0901"}}`, wantKind: upstream.Invalid},
	{name: "403", status: 403, body: `{"fault":{"code":"900908","message":"Resource forbidden"}}`, wantKind: upstream.Rejected, wantCode: "900908"},
	{name: "404 wrong path prefix", status: 404, wantKind: upstream.Invalid},
	{name: "408", status: 408, wantKind: upstream.Transient},
	{name: "429 retry-after seconds", status: 429, body: `{"fault":{"code":"900800","message":"Message throttled out"}}`, headers: []string{"Retry-After", "7"}, wantKind: upstream.Transient, wantCode: "900800", wantRetryAfter: 7 * time.Second},
	{name: "500", status: 500, body: `{"error":"server_error"}`, wantKind: upstream.Transient, wantCode: "server_error"},
	{name: "502 html", status: 502, body: `<html>bad gateway</html>`, headers: []string{"Content-Type", "text/html"}, wantKind: upstream.Transient},
	{name: "503 retry-after http-date", status: 503, headers: []string{"Retry-After", testNow.Add(2 * time.Minute).Format(http.TimeFormat)}, wantKind: upstream.Transient, wantRetryAfter: 2 * time.Minute},
	{name: "503 retry-after garbage", status: 503, headers: []string{"Retry-After", "later"}, wantKind: upstream.Transient},
	{name: "400 temporarily_unavailable", status: 400, body: `{"error":"temporarily_unavailable"}`, wantKind: upstream.Transient, wantCode: "temporarily_unavailable"},
	{name: "401 oversized body classified by status alone", status: 401, body: `{"error":"invalid_client","pad":"` + strings.Repeat("x", int(upstream.DefaultBodyLimit)) + `"}`, wantKind: upstream.Rejected},
	{name: "409 unclassified", status: 409, wantKind: upstream.Unknown},
}

func TestErrorMapping(t *testing.T) {
	endpoints := map[string]func(*Client, context.Context) error{
		EndpointToken: func(c *Client, ctx context.Context) error {
			_, err := c.Token(ctx, testCreds, "")
			return err
		},
		EndpointRevoke: func(c *Client, ctx context.Context) error {
			return c.Revoke(ctx, testCreds, testToken)
		},
	}
	for endpoint, callFn := range endpoints {
		for _, tt := range errorCases {
			t.Run(endpoint+"/"+tt.name, func(t *testing.T) {
				srv := newServer(t, respond(tt.status, tt.body, tt.headers...))
				c, rec := newTestClient(t, srv)
				err := callFn(c, t.Context())
				var ue *upstream.Error
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want *upstream.Error", err)
				}
				if ue.API != API || ue.Endpoint != endpoint || ue.StatusCode != tt.status {
					t.Errorf("API/Endpoint/Status = %q/%q/%d", ue.API, ue.Endpoint, ue.StatusCode)
				}
				if ue.Kind != tt.wantKind {
					t.Errorf("Kind = %v, want %v", ue.Kind, tt.wantKind)
				}
				if ue.Code != tt.wantCode {
					t.Errorf("Code = %q, want %q", ue.Code, tt.wantCode)
				}
				if ue.RetryAfter != tt.wantRetryAfter {
					t.Errorf("RetryAfter = %v, want %v", ue.RetryAfter, tt.wantRetryAfter)
				}
				if got, ok := upstream.RetryAfterOf(err); ok != (tt.wantRetryAfter > 0) || got != tt.wantRetryAfter {
					t.Errorf("RetryAfterOf = %v, %v", got, ok)
				}
				if upstream.IsTransient(err) != (tt.wantKind == upstream.Transient) {
					t.Error("IsTransient disagrees with Kind")
				}
				rec.Expect(t, endpoint+" "+strconv.Itoa(tt.status))
			})
		}
	}
}
