package thingspace

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
)

func TestM2MRefusedBeforeSending(t *testing.T) {
	var hits atomic.Int32
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	c, rec := newTestClient(t, srv)
	ctx := t.Context()
	tests := map[string]func() error{
		"login: empty app token": func() error { _, err := c.Login(ctx, "", testUWS); return err },
		"login: app token with CRLF": func() error {
			_, err := c.Login(ctx, testToken+"\r\nX-Injected: 1", testUWS)
			return err
		},
		"login: app token with space": func() error { _, err := c.Login(ctx, "a b", testUWS); return err },
		"login: empty username": func() error {
			_, err := c.Login(ctx, testToken, UWSCredentials{Password: testUWSPass})
			return err
		},
		"login: empty password": func() error {
			_, err := c.Login(ctx, testToken, UWSCredentials{Username: testUWSUser})
			return err
		},
		"login: password with a trailing newline": func() error {
			_, err := c.Login(ctx, testToken, UWSCredentials{Username: testUWSUser, Password: testUWSPass + "\n"})
			return err
		},
		"login: password not UTF-8": func() error {
			_, err := c.Login(ctx, testToken, UWSCredentials{Username: testUWSUser, Password: testUWSPass + "\xff"})
			return err
		},
		"login: username with a tab": func() error {
			_, err := c.Login(ctx, testToken, UWSCredentials{Username: "uws\tuser", Password: testUWSPass})
			return err
		},
		"logout: empty session":          func() error { return c.Logout(ctx, testToken, "") },
		"logout: empty app token":        func() error { return c.Logout(ctx, "", testSession) },
		"logout: session with a newline": func() error { return c.Logout(ctx, testToken, testSession+"\n") },
		"reset: empty session": func() error {
			_, err := c.ResetPassword(ctx, testToken, "", testUWSPass)
			return err
		},
		"reset: empty old password": func() error {
			_, err := c.ResetPassword(ctx, testToken, testSession, "")
			return err
		},
		"reset: old password with control characters": func() error {
			_, err := c.ResetPassword(ctx, testToken, testSession, testUWSPass+"\x00")
			return err
		},
		"account: empty session":      func() error { return c.Account(ctx, testToken, "", testAcct) },
		"account: empty name":         func() error { return c.Account(ctx, testToken, testSession, "") },
		"account: dot-dot":            func() error { return c.Account(ctx, testToken, testSession, "..") },
		"account: slash":              func() error { return c.Account(ctx, testToken, testSession, "../session/logout") },
		"account: query":              func() error { return c.Account(ctx, testToken, testSession, "x?y=1") },
		"account: percent":            func() error { return c.Account(ctx, testToken, testSession, "%2e%2e") },
		"account: space":              func() error { return c.Account(ctx, testToken, testSession, "a b") },
		"account: too long":           func() error { return c.Account(ctx, testToken, testSession, strings.Repeat("1", 65)) },
		"account: non-ASCII":          func() error { return c.Account(ctx, testToken, testSession, "compte-é") },
		"account: session with space": func() error { return c.Account(ctx, testToken, "a b", testAcct) },
	}
	for name, call := range tests {
		t.Run(name, func(t *testing.T) {
			err := call()
			var ue *upstream.Error
			if !errors.As(err, &ue) || ue.Kind != upstream.Invalid || ue.StatusCode != 0 {
				t.Fatalf("err = %v, want Invalid with no status", err)
			}
			if IsSessionInvalid(err) || IsBearerRejected(err) {
				t.Error("a refusal before sending reads as an upstream answer")
			}
			if l := m2mLeaked(err.Error()); len(l) > 0 {
				t.Errorf("message %q leaks %q", err, l)
			}
		})
	}
	if hits.Load() != 0 {
		t.Errorf("server got %d requests for arguments that cannot be sent", hits.Load())
	}
	rec.Expect(t)

	// Values at the edge of the rules are sent.
	ok := newServer(t, respond(200, `{}`))
	c2, _ := newTestClient(t, ok)
	if err := c2.Account(ctx, testToken, testSession, strings.Repeat("1", 64)); err != nil {
		t.Errorf("64-character account name: %v", err)
	}
	if err := c2.Account(ctx, testToken, testSession, "a.b_c~d-e"); err != nil {
		t.Errorf("account name with . _ ~ -: %v", err)
	}
}

func TestLoginMalformed200IsTransient(t *testing.T) {
	bodies := map[string]string{
		"empty":                   ``,
		"not json":                `<html>proxy login</html>`,
		"json array":              `[]`,
		"sessionToken missing":    `{"token":"` + testSession + `"}`,
		"sessionToken empty":      `{"sessionToken":""}`,
		"sessionToken a number":   `{"sessionToken":12345}`,
		"sessionToken with CRLF":  `{"sessionToken":"a\r\nX-Injected: 1"}`,
		"sessionToken with space": `{"sessionToken":"a b"}`,
		"oversized":               `{"sessionToken":"` + testSession + `","pad":"` + strings.Repeat("x", int(upstream.DefaultBodyLimit)) + `"}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, respond(200, body))
			c, rec := newTestClient(t, srv)
			session, err := c.Login(t.Context(), testToken, testUWS)
			var ue *upstream.Error
			if !errors.As(err, &ue) || ue.Kind != upstream.Transient || ue.StatusCode != 200 {
				t.Fatalf("err = %v, want a transient *upstream.Error with status 200", err)
			}
			if session != "" || upstream.KindOf(err) == upstream.Rejected {
				t.Error("a malformed 200 is neither a session nor a rejection")
			}
			rec.Expect(t, "login 200")
		})
	}
}

// A 2xx reset whose password cannot be read means the password changed and is lost: Unknown,
// never Transient (a retry cannot bring it back).
func TestResetPasswordMalformed200IsUnknown(t *testing.T) {
	bodies := map[string]string{
		"empty":                    ``,
		"not json":                 `<html>proxy</html>`,
		"newPassword missing":      `{"password":"` + testNewPass + `"}`,
		"newPassword empty":        `{"newPassword":""}`,
		"newPassword a number":     `{"newPassword":123456789}`,
		"newPassword with newline": `{"newPassword":"` + testNewPass + `\n"}`,
		"newPassword not UTF-8":    "{\"newPassword\":\"" + testNewPass + "\xff\"}",
		"newPassword too long":     `{"newPassword":"` + strings.Repeat("A1b", 50) + `"}`,
		"oversized":                `{"newPassword":"` + testNewPass + `","pad":"` + strings.Repeat("x", int(upstream.DefaultBodyLimit)) + `"}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, respond(200, body))
			c, rec := newTestClient(t, srv)
			pw, err := c.ResetPassword(t.Context(), testToken, testSession, testUWSPass)
			var ue *upstream.Error
			if !errors.As(err, &ue) || ue.Kind != upstream.Unknown || ue.StatusCode != 200 || ue.Endpoint != EndpointResetPassword {
				t.Fatalf("err = %v, want an Unknown *upstream.Error with status 200", err)
			}
			if pw != "" {
				t.Error("a password returned with an error")
			}
			if !strings.Contains(err.Error(), "password has probably changed") {
				t.Errorf("message %q does not warn that the password changed", err)
			}
			rec.Expect(t, "password_reset 200")
		})
	}
}

// Account discards the body with a bounded read: an endless body neither hangs nor fails it.
func TestAccountEndlessBody(t *testing.T) {
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	c, rec := newTestClient(t, srv, WithRequestTimeout(10*time.Second))
	start := time.Now()
	if err := c.Account(t.Context(), testToken, testSession, testAcct); err != nil {
		t.Fatalf("Account: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v: the body read is not bounded", d)
	}
	rec.Expect(t, "account 200")
}

// --- leaks ---

// m2mNeedles must never appear in anything printed: the UWS password (old and new), the session
// token, the app token and upstream free text.
var m2mNeedles = []string{testUWSPass, testNewPass, testSession, testToken, descriptionMarker}

func m2mLeaked(s string) []string {
	var found []string
	for _, n := range m2mNeedles {
		if strings.Contains(s, n) {
			found = append(found, n)
		}
	}
	return found
}

func TestM2MLeakDetector(t *testing.T) {
	for _, n := range m2mNeedles {
		if len(m2mLeaked("a "+n+" b")) == 0 {
			t.Fatalf("detector misses %q", n)
		}
	}
	if len(m2mLeaked("nothing")) != 0 {
		t.Fatal("false positive")
	}
}

func TestM2MNoSecretsInErrors(t *testing.T) {
	echo := strings.Join(m2mNeedles, " ")
	echoing := func(status int, shape string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if r.Header.Get("Authorization") != "Bearer "+testToken {
				t.Errorf("server did not receive the app token: the test would prove nothing")
			}
			heard := echo + " " + string(b) + " " + r.Header.Get("Authorization") + " " + r.Header.Get(M2MTokenHeader)
			var body any
			switch shape {
			case "m2m":
				body = map[string]any{"errorCode": testUWSPass, "errorMessage": heard}
			case "m2m session code":
				body = map[string]any{"errorCode": "UnifiedWebService.SessionToken." + testSession, "errorMessage": heard}
			case "m2m dotted password":
				// Even a password-shaped segment in a valid code: only its letters could pass.
				body = map[string]any{"errorCode": "UnifiedWebService." + testUWSPass + ".Invalid", "errorMessage": heard}
			case "fault":
				body = map[string]any{"fault": map[string]any{"code": testSession, "message": heard, "description": heard}}
			case "everything":
				body = map[string]any{
					"error": testUWSPass, "error_description": heard,
					"fault":     map[string]any{"code": testToken, "message": heard, "description": heard},
					"errorCode": testSession, "errorMessage": heard,
					"sessionToken": heard, "newPassword": heard,
				}
			}
			out, _ := json.Marshal(body)
			if len(m2mLeaked(string(out))) != len(m2mNeedles) && shape == "everything" {
				t.Error("fake server does not echo every needle")
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", echo)
			w.Header().Set("X-Echo", testUWSPass)
			w.WriteHeader(status)
			_, _ = w.Write(out)
		}
	}
	handlers := map[string]http.HandlerFunc{}
	for _, status := range []int{400, 401, 403, 404, 409, 429, 500, 503} {
		for _, shape := range []string{"m2m", "m2m session code", "m2m dotted password", "fault", "everything"} {
			handlers[strconv.Itoa(status)+" "+shape] = echoing(status, shape)
		}
	}
	handlers["200 malformed echo"] = func(w http.ResponseWriter, r *http.Request) {
		out, _ := json.Marshal(map[string]any{"sessionToken": echo, "newPassword": map[string]string{"x": echo}})
		_, _ = w.Write(out)
	}
	handlers["200 invalid json quoting secrets"] = func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"sessionToken":` + testSession + `,"newPassword":` + testNewPass + `}`))
	}
	handlers["malformed status line"] = func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 2" + echo + "\r\n\r\n")
		_ = buf.Flush()
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, h)
			c, _ := newTestClient(t, srv)
			for _, ep := range m2mCalls {
				_, err := ep.call(c, t)
				if err == nil {
					if strings.HasPrefix(name, "200") && (ep.endpoint == EndpointLogout || ep.endpoint == EndpointAccount) {
						continue // these ignore 2xx bodies
					}
					t.Fatalf("%s: no error", ep.endpoint)
				}
				wrapped := fmt.Errorf("reconcile: %w", err)
				for _, s := range []string{
					err.Error(), wrapped.Error(),
					fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err),
					fmt.Sprintf("%s", err), fmt.Sprintf("%q", err), fmt.Sprintf("%x", err),
					fmt.Sprintf("%#v", wrapped), mustJSON(t, err),
				} {
					if l := m2mLeaked(s); len(l) > 0 {
						t.Errorf("%s error rendering %q leaks %q", ep.endpoint, s, l)
					}
				}
				var ue *upstream.Error
				if errors.As(err, &ue) && m2mLeaked(ue.Code) != nil {
					t.Errorf("%s: Code %q holds a secret", ep.endpoint, ue.Code)
				}
			}
		})
	}
}
