package thingspace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

const descriptionMarker = "DESCRIPTION-free-text-from-upstream"

// needles must never appear in anything this package lets a caller print.
var needles = []string{testSecret, testToken, testBasic, descriptionMarker}

func leaked(s string) []string {
	var found []string
	for _, n := range needles {
		if strings.Contains(s, n) {
			found = append(found, n)
		}
	}
	return found
}

// The detector itself must work, or the leak test proves nothing.
func TestLeakDetector(t *testing.T) {
	for _, n := range needles {
		if len(leaked("prefix "+n+" suffix")) == 0 {
			t.Fatalf("detector misses %q", n)
		}
	}
	if len(leaked("nothing here")) != 0 {
		t.Fatal("detector false positive")
	}
}

// echo is everything a hostile or sloppy upstream could send back: the secret, the token, the
// Basic value and free text, in every field, including fields that look like codes.
var echo = testSecret + " " + testToken + " " + testBasic + " " + descriptionMarker

func echoBody(t *testing.T, r *http.Request) string {
	t.Helper()
	if got := r.Header.Get("Authorization"); got != "Basic "+testBasic {
		t.Errorf("server did not receive the credentials (got %q): the leak test would prove nothing", got)
	}
	b, _ := json.Marshal(map[string]any{
		"error":             testSecret, // code-shaped: only the whitelist keeps it out
		"error_description": echo + " " + r.Header.Get("Authorization") + " " + r.PostForm.Encode(),
		"fault": map[string]any{
			"code":        testSecret,
			"message":     echo,
			"description": echo,
		},
		"errorCode":    testSecret,
		"errorMessage": echo,
	})
	if len(leaked(string(b))) != len(needles) {
		t.Fatal("fake server does not echo every needle")
	}
	return string(b)
}

func TestNoSecretsInErrors(t *testing.T) {
	type exchange struct {
		name    string
		handler func(t *testing.T) http.HandlerFunc
	}
	withStatus := func(status int) func(t *testing.T) http.HandlerFunc {
		return func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm()
				body := echoBody(t, r)
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", echo)
				w.Header().Set("X-Echo", testSecret)
				w.WriteHeader(status)
				_, _ = w.Write([]byte(body))
			}
		}
	}
	raw := func(response string) func(t *testing.T) http.HandlerFunc {
		return func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				conn, buf, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				_, _ = buf.WriteString(response)
				_ = buf.Flush()
			}
		}
	}
	exchanges := []exchange{
		{"400", withStatus(400)},
		{"401", withStatus(401)},
		{"403", withStatus(403)},
		{"404", withStatus(404)},
		{"429", withStatus(429)},
		{"500", withStatus(500)},
		{"503", withStatus(503)},
		{"200 malformed", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm()
				_ = echoBody(t, r)
				b, _ := json.Marshal(map[string]any{"access_token": echo, "expires_in": echo, "error_description": echo})
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(b)
			}
		}},
		{"200 invalid json quoting the secret", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(`{"access_token":` + testSecret + `}`))
			}
		}},
		{"malformed status line", raw("HTTP/1.1 2" + echo + "\r\n\r\n")},
		{"malformed header line", raw("HTTP/1.1 200 OK\r\n" + echo + "\r\n\r\n")},
	}
	for _, ex := range exchanges {
		t.Run(ex.name, func(t *testing.T) {
			srv := newServer(t, ex.handler(t))
			c, _ := newTestClient(t, srv)
			_, tokErr := c.Token(t.Context(), testCreds, "scope-"+testSecret)
			revErr := c.Revoke(t.Context(), testCreds, testToken)
			for name, err := range map[string]error{"Token": tokErr, "Revoke": revErr} {
				if err == nil {
					if name == "Revoke" && strings.HasPrefix(ex.name, "200") {
						continue // revoke ignores 2xx bodies
					}
					t.Fatalf("%s: no error", name)
				}
				wrapped := fmt.Errorf("reconcile: %w", err)
				for _, s := range []string{
					err.Error(), wrapped.Error(),
					fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err),
					fmt.Sprintf("%s", err), fmt.Sprintf("%q", err), fmt.Sprintf("%x", err),
					mustJSON(t, err),
				} {
					if l := leaked(s); len(l) > 0 {
						t.Errorf("%s error rendering %q leaks %q", name, s, l)
					}
				}
			}
		})
	}
}

// Credentials and Token: every rendering a log line can reach.
func TestNoSecretsInRenderings(t *testing.T) {
	tok := Token{AccessToken: testToken, TokenType: "Bearer", Scope: "s", ExpiresIn: time.Hour}
	values := map[string]any{
		"Credentials":  testCreds,
		"*Credentials": &testCreds,
		"Token":        tok,
		"*Token":       &tok,
		"struct": struct {
			C Credentials
			T Token
		}{testCreds, tok},
		"slice": []any{testCreds, tok},
		"map":   map[string]any{"c": testCreds, "t": tok},
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			for _, s := range renderings(t, v) {
				if l := leaked(s); len(l) > 0 {
					t.Errorf("rendering %q leaks %q", s, l)
				}
			}
		})
	}
}

func TestRenderingsKeepUsefulFields(t *testing.T) {
	tok := Token{AccessToken: testToken, TokenType: "Bearer", Scope: "ts.mtas", ExpiresIn: time.Hour}
	for _, tt := range []struct {
		got  string
		want []string
	}{
		{fmt.Sprintf("%v", testCreds), []string{testKey, Redacted}},
		{fmt.Sprintf("%#v", testCreds), []string{`thingspace.Credentials{Key:"` + testKey + `"`, Redacted}},
		{fmt.Sprintf("%v", Credentials{Key: "k"}), []string{"Secret:}"}},
		{fmt.Sprintf("%v", tok), []string{Redacted, "Bearer", "ts.mtas", "1h0m0s"}},
		{fmt.Sprintf("%#v", tok), []string{"thingspace.Token{", Redacted}},
		{mustJSON(t, tok), []string{`"accessToken":"` + Redacted + `"`}},
	} {
		for _, w := range tt.want {
			if !strings.Contains(tt.got, w) {
				t.Errorf("%q does not contain %q", tt.got, w)
			}
		}
	}
}

// renderings are the ways a value may reach a log line or an error string: every fmt verb, JSON, slog's
// handlers and a logr MarshalLog.
func renderings(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3v"} {
		out = append(out, fmt.Sprintf(verb, v))
	}
	out = append(out, mustJSON(t, v), fmt.Sprint(v), fmt.Sprintln(v))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("msg", "value", v)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("msg", "value", v)
	out = append(out, buf.String())
	if m, ok := v.(interface{ MarshalLog() any }); ok {
		out = append(out, mustJSON(t, m.MarshalLog()), fmt.Sprintf("%+v", m.MarshalLog()))
	}
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		// Some values (an error with no exported fields) marshal to {}; a failure is a test bug.
		t.Fatalf("json.Marshal: %v", err)
	}
	return string(b)
}
