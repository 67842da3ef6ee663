package cloudapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream/upstreamtest"
)

const descriptionMarker = "DESCRIPTION-free-text-from-upstream"

// needles must never appear in anything this package lets a caller print.
var needles = upstreamtest.Needles{testSecret, testBasic, testAccessToken, testRefreshToken, testCode, descriptionMarker}

// The detector itself must work, or the leak test proves nothing.
func TestLeakDetector(t *testing.T) { needles.CheckDetector(t) }

// echo is everything a hostile or sloppy upstream could send back.
var echo = strings.Join(needles, " ")

// echoBody returns an error body that echoes every needle, including what the request carried,
// in every member, code-shaped ones included.
func echoBody(t *testing.T, r *http.Request) string {
	t.Helper()
	_ = r.ParseForm()
	auth := r.Header.Get("Authorization")
	if auth != "Basic "+testBasic && auth != "Bearer "+testAccessToken {
		t.Errorf("server did not receive the credentials (got %q): the leak test would prove nothing", auth)
	}
	b, _ := json.Marshal(map[string]any{
		"error":             testSecret, // code-shaped: only the whitelist keeps it out
		"error_description": echo + " " + auth + " " + r.PostForm.Encode(),
		"error_uri":         "https://x.example/" + testRefreshToken,
		"message":           echo,
	})
	if len(needles.In(string(b))) != len(needles) {
		t.Fatal("fake server does not echo every needle")
	}
	return string(b)
}

func TestNoSecretsInErrors(t *testing.T) {
	withStatus := func(status int) func(t *testing.T) http.HandlerFunc {
		return func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				body := echoBody(t, r)
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", echo)
				w.Header().Set("Location", "https://x.example/?code="+testCode)
				w.WriteHeader(status)
				_, _ = w.Write([]byte(body))
			}
		}
	}
	raw := func(response string) func(t *testing.T) http.HandlerFunc {
		return func(t *testing.T) http.HandlerFunc { return upstreamtest.Raw(t, response) }
	}
	exchanges := []struct {
		name    string
		handler func(t *testing.T) http.HandlerFunc
		// okFor names the call for which the exchange is a success.
		okFor string
	}{
		{name: "302", handler: withStatus(302)},
		{name: "400", handler: withStatus(400)},
		{name: "401", handler: withStatus(401)},
		{name: "403", handler: withStatus(403)},
		{name: "404", handler: withStatus(404)},
		{name: "429", handler: withStatus(429)},
		{name: "500", handler: withStatus(500)},
		{name: "503", handler: withStatus(503)},
		{name: "200 malformed", okFor: "Account", handler: func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				_ = echoBody(t, r)
				b, _ := json.Marshal(map[string]any{"access_token": echo, "refresh_token": echo + "\n", "expires_in": echo})
				_, _ = w.Write(b)
			}
		}},
		{name: "200 unusable refresh token", okFor: "Account", handler: func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				b, _ := json.Marshal(map[string]any{"access_token": "a", "refresh_token": testRefreshToken + "\x00" + testSecret, "expires_in": 60})
				_, _ = w.Write(b)
			}
		}},
		{name: "200 invalid json quoting secrets", okFor: "Account", handler: func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(`{"access_token":` + testSecret + testRefreshToken + `}`))
			}
		}},
		{name: "malformed status line", handler: raw("HTTP/1.1 2" + echo + "\r\n\r\n")},
		{name: "malformed header line", handler: raw("HTTP/1.1 200 OK\r\n" + echo + "\r\n\r\n")},
		{name: "cut off answer", okFor: "Account", handler: raw("HTTP/1.1 200 OK\r\nContent-Length: 900\r\n\r\n{\"access_token\":\"" + testAccessToken)},
		{name: "no answer", handler: raw("")},
	}
	for _, ex := range exchanges {
		t.Run(ex.name, func(t *testing.T) {
			srv := upstreamtest.NewServer(t, ex.handler(t))
			c, _ := newTestClient(t, srv)
			_, exErr := c.Exchange(t.Context(), testCreds, testCode, testRedirect)
			_, refErr := c.Refresh(t.Context(), testCreds, testRefreshToken)
			accErr := c.Account(t.Context(), testAccessToken)
			for name, err := range map[string]error{"Exchange": exErr, "Refresh": refErr, "Account": accErr} {
				if err == nil {
					if name == ex.okFor {
						continue
					}
					t.Fatalf("%s: no error", name)
				}
				needles.CheckRenderings(t, err)
			}
		})
	}
}

// Tokens and Credentials: every rendering a log line can reach.
func TestNoSecretsInRenderings(t *testing.T) {
	tok := Tokens{AccessToken: testAccessToken, RefreshToken: testRefreshToken, TokenType: "Bearer", ExpiresIn: time.Hour}
	values := map[string]any{
		"Credentials":  testCreds,
		"*Credentials": &testCreds,
		"Tokens":       tok,
		"*Tokens":      &tok,
		"struct": struct {
			C Credentials
			T Tokens
		}{testCreds, tok},
		"slice": []any{testCreds, tok},
		"map":   map[string]any{"c": testCreds, "t": tok},
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) { needles.CheckRenderings(t, v) })
	}
}

func TestRenderingsKeepUsefulFields(t *testing.T) {
	tok := Tokens{AccessToken: testAccessToken, RefreshToken: testRefreshToken, TokenType: "Bearer", ExpiresIn: time.Hour}
	var slogJSON bytes.Buffer
	slog.New(slog.NewJSONHandler(&slogJSON, nil)).Info("msg", "tokens", tok)
	for _, tt := range []struct {
		got, want string
	}{
		{fmt.Sprintf("%v", tok), "{AccessToken:[REDACTED] RefreshToken:[REDACTED] TokenType:Bearer ExpiresIn:1h0m0s}"},
		{fmt.Sprintf("%v", Tokens{AccessToken: testAccessToken}), "{AccessToken:[REDACTED] RefreshToken: TokenType: ExpiresIn:0s}"},
		{fmt.Sprintf("%#v", tok), `cloudapi.Tokens{AccessToken:"[REDACTED]", RefreshToken:"[REDACTED]", TokenType:"Bearer", ExpiresIn:3600000000000, LifetimeAssumed:false, LifetimeCapped:false}`},
		{upstreamtest.MustJSON(t, tok), `{"accessToken":"[REDACTED]","refreshToken":"[REDACTED]","tokenType":"Bearer","expiresIn":3600000000000}`},
		{fmt.Sprintf("%v", testCreds), "{Key:" + testKey + " Secret:[REDACTED]}"},
		{fmt.Sprintf("%#v", testCreds), `cloudapi.Credentials{Key:"` + testKey + `", Secret:"[REDACTED]"}`},
		{upstreamtest.MustJSON(t, testCreds), `{"key":"` + testKey + `","secret":"[REDACTED]"}`},
	} {
		if tt.got != tt.want {
			t.Errorf("got  %s\nwant %s", tt.got, tt.want)
		}
	}
	if !strings.Contains(slogJSON.String(), `"tokens":{"accessToken":"[REDACTED]","refreshToken":"[REDACTED]","tokenType":"Bearer"`) {
		t.Errorf("slog JSON: %s", slogJSON.String())
	}
}
