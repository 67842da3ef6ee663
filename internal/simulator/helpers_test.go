package simulator

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

const (
	appKey    = "app-key"
	appSecret = "app-secret"
	otherKey  = "other-key"
	otherSec  = "other-secret"

	tokenRoute  = "POST " + tsTokenPath
	revokeRoute = "POST " + tsRevokePath
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type fixture struct {
	t   *testing.T
	srv *Server
	clk *clocktesting.FakeClock
}

// newFixture builds a server with two apps on a fake clock; mutate tweaks cfg.
func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	clk := clocktesting.NewFakeClock(epoch)
	cfg := Config{
		Apps:  map[string]string{appKey: appSecret, otherKey: otherSec},
		Clock: clk,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	return &fixture{t: t, srv: New(cfg), clk: clk}
}

func (f *fixture) do(r *http.Request) *httptest.ResponseRecorder {
	f.t.Helper()
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	return w
}

func basic(key, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+secret))
}

// formReq builds a form POST; auth "" sends no Authorization header.
func formReq(path, auth, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}

type tokenBody struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

// token fetches a token for key/secret and insists on a well-formed 200.
func (f *fixture) token(key, secret string) tokenBody {
	f.t.Helper()
	w := f.do(formReq(tsTokenPath, basic(key, secret), "grant_type=client_credentials"))
	if w.Code != http.StatusOK {
		f.t.Fatalf("token: status %d, body %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		f.t.Fatalf("token: Content-Type %q", ct)
	}
	var tb tokenBody
	if err := json.Unmarshal(w.Body.Bytes(), &tb); err != nil {
		f.t.Fatalf("token: %v in %s", err, w.Body)
	}
	if tb.AccessToken == "" || tb.TokenType != "Bearer" || tb.Scope == "" {
		f.t.Fatalf("token: incomplete body %s", w.Body)
	}
	return tb
}

// revoke revokes tok as key/secret and returns the response.
func (f *fixture) revoke(key, secret, tok string) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(formReq(tsRevokePath, basic(key, secret), "grant_type=client_credentials&token="+tok))
}

// decodeMap decodes a JSON object so tests can check exact keys and types.
func decodeMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", b, err)
	}
	return m
}

// faultOf returns the fault object of a gateway fault body, failing the test
// when the shape is wrong.
func faultOf(t *testing.T, b []byte) map[string]any {
	t.Helper()
	m := decodeMap(t, b)
	f, ok := m["fault"].(map[string]any)
	if !ok || len(m) != 1 {
		t.Fatalf("want {\"fault\":{...}}, got %s", b)
	}
	if _, ok := f["code"].(string); !ok {
		t.Fatalf("fault.code must be a JSON string, got %s", b)
	}
	return f
}
