package cloudapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
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
