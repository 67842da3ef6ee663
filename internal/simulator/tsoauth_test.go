package simulator

import (
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"
)

func TestTokenSameWithinLifetime(t *testing.T) {
	f := newFixture(t, nil)
	first := f.token(appKey, appSecret)
	if first.ExpiresIn != 3600 {
		t.Fatalf("first expires_in = %d, want 3600", first.ExpiresIn)
	}

	steps := []struct {
		advance time.Duration
		want    int64
	}{
		{10*time.Second + 500*time.Millisecond, 3589}, // 3589.5s left rounds down
		{29 * time.Minute, 1849},
		{1849*time.Second - time.Millisecond, 0}, // 1ms left: still live, 0 not negative
	}
	for _, st := range steps {
		f.clk.Step(st.advance)
		got := f.token(appKey, appSecret)
		if got.AccessToken != first.AccessToken {
			t.Fatalf("after %v: token changed within lifetime", st.advance)
		}
		if got.ExpiresIn != st.want {
			t.Fatalf("after %v: expires_in = %d, want %d", st.advance, got.ExpiresIn, st.want)
		}
	}
	if !f.srv.ValidBearer(first.AccessToken) {
		t.Fatal("token should still be valid 1ms before expiry")
	}
}

func TestTokenSharedPerAppKey(t *testing.T) {
	f := newFixture(t, nil)
	var wg sync.WaitGroup
	got := make([]string, 20)
	for i := range got {
		wg.Go(func() { got[i] = f.token(appKey, appSecret).AccessToken })
	}
	wg.Wait()
	for i, tok := range got {
		if tok != got[0] {
			t.Fatalf("client %d got a different token for the same app key", i)
		}
	}
	if other := f.token(otherKey, otherSec).AccessToken; other == got[0] {
		t.Fatal("different app keys must not share a token")
	}
}

func TestTokenNewAfterExpiry(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.TokenLifetime = 90 * time.Second })
	first := f.token(appKey, appSecret)
	if first.ExpiresIn != 90 {
		t.Fatalf("expires_in = %d, want configured 90", first.ExpiresIn)
	}
	f.clk.Step(90 * time.Second)
	if f.srv.ValidBearer(first.AccessToken) {
		t.Fatal("token valid at its expiry instant")
	}
	second := f.token(appKey, appSecret)
	if second.AccessToken == first.AccessToken {
		t.Fatal("expired token was reissued")
	}
	if second.ExpiresIn != 90 {
		t.Fatalf("new token expires_in = %d, want 90", second.ExpiresIn)
	}
}

func TestTokenShape(t *testing.T) {
	f := newFixture(t, nil)
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 50 {
		tok := f.token(appKey, appSecret)
		if !uuid.MatchString(tok.AccessToken) {
			t.Fatalf("token %q is not a random UUID", tok.AccessToken)
		}
		if seen[tok.AccessToken] {
			t.Fatal("revoked token value came back: tokens are not random")
		}
		seen[tok.AccessToken] = true
		if w := f.revoke(appKey, appSecret, tok.AccessToken); w.Header().Get(RevokedTokenHeader) == "" {
			t.Fatal("revoke did not revoke")
		}
	}

	w := f.do(formReq(tsTokenPath, basic(appKey, appSecret), "grant_type=client_credentials"))
	m := decodeMap(t, w.Body.Bytes())
	if _, ok := m["expires_in"].(float64); !ok {
		t.Fatalf("expires_in must be a JSON number: %s", w.Body)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Fatal("token response must not be cacheable")
	}
}

func TestTokenScope(t *testing.T) {
	f := newFixture(t, nil)
	w := f.do(formReq(tsTokenPath, basic(appKey, appSecret), "grant_type=client_credentials&scope=a+b"))
	m := decodeMap(t, w.Body.Bytes())
	if m["scope"] != "a b" {
		t.Fatalf("scope = %v, want requested %q", m["scope"], "a b")
	}
	if got := f.token(otherKey, otherSec).Scope; got != defaultScope {
		t.Fatalf("scope without request = %q, want %q", got, defaultScope)
	}
}

func TestRevoke(t *testing.T) {
	f := newFixture(t, nil)
	old := f.token(appKey, appSecret)
	f.clk.Step(time.Minute)

	w := f.revoke(appKey, appSecret, old.AccessToken)
	if w.Code != http.StatusOK {
		t.Fatalf("revoke status %d, body %s", w.Code, w.Body)
	}
	if w.Body.Len() != 0 {
		t.Fatalf("revoke must have no body, got %q", w.Body)
	}
	if got := w.Header().Get(RevokedTokenHeader); got != old.AccessToken {
		t.Fatalf("%s = %q, want the revoked token", RevokedTokenHeader, got)
	}
	if f.srv.ValidBearer(old.AccessToken) {
		t.Fatal("revoked token still valid")
	}

	fresh := f.token(appKey, appSecret)
	if fresh.AccessToken == old.AccessToken {
		t.Fatal("token request after revoke returned the revoked token")
	}
	if fresh.ExpiresIn != 3600 {
		t.Fatalf("new token expires_in = %d, want a full 3600", fresh.ExpiresIn)
	}
	if !f.srv.ValidBearer(fresh.AccessToken) {
		t.Fatal("new token not valid")
	}
}

func TestRevokeChangesNothing(t *testing.T) {
	tests := []struct {
		name string
		// setup returns the token to revoke, the app's live token, and which
		// app's credentials to revoke with.
		setup func(f *fixture) (revoke, live, key, secret string)
	}{
		{"stale token", func(f *fixture) (string, string, string, string) {
			old := f.token(appKey, appSecret).AccessToken
			f.revoke(appKey, appSecret, old)
			return old, f.token(appKey, appSecret).AccessToken, appKey, appSecret
		}},
		{"expired token", func(f *fixture) (string, string, string, string) {
			old := f.token(appKey, appSecret).AccessToken
			f.clk.Step(time.Hour)
			return old, f.token(appKey, appSecret).AccessToken, appKey, appSecret
		}},
		{"unknown token", func(f *fixture) (string, string, string, string) {
			return "not-a-token", f.token(appKey, appSecret).AccessToken, appKey, appSecret
		}},
		{"another app's token", func(f *fixture) (string, string, string, string) {
			live := f.token(appKey, appSecret).AccessToken
			return live, live, otherKey, otherSec
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			target, live, key, secret := tt.setup(f)
			f.clk.Step(time.Second)

			w := f.revoke(key, secret, target)
			if w.Code != http.StatusOK || w.Body.Len() != 0 {
				t.Fatalf("revoke: status %d body %q, want 200 and no body", w.Code, w.Body)
			}
			if h := w.Header().Get(RevokedTokenHeader); h != "" {
				t.Fatalf("nothing was revoked but %s = %q", RevokedTokenHeader, h)
			}
			if !f.srv.ValidBearer(live) {
				t.Fatal("live token was ended")
			}
			if got := f.token(appKey, appSecret).AccessToken; got != live {
				t.Fatal("token changed after a no-op revoke")
			}
		})
	}
}

func TestAuthErrors(t *testing.T) {
	const okForm = "grant_type=client_credentials&token=x"
	type want struct {
		status int
		fault  string // gateway fault code, or ""
		oauth  string // OAuth error, or ""
	}
	missing := want{http.StatusUnauthorized, "900902", ""}
	badClient := want{http.StatusUnauthorized, "", "invalid_client"}
	badRequest := want{http.StatusBadRequest, "", "invalid_request"}

	tests := []struct {
		name   string
		path   string
		header string // Authorization; "" = none
		ctype  string // Content-Type; "" = form
		body   string
		want   want
	}{
		{"token no auth", tsTokenPath, "", "", okForm, missing},
		{"token bearer not basic", tsTokenPath, "Bearer abc", "", okForm, missing},
		{"token wrong secret", tsTokenPath, basic(appKey, "nope"), "", okForm, badClient},
		{"token unknown key", tsTokenPath, basic("nobody", appSecret), "", okForm, badClient},
		{"token unknown key empty secret", tsTokenPath, basic("nobody", ""), "", okForm, badClient},
		{"token other app's secret", tsTokenPath, basic(appKey, otherSec), "", okForm, badClient},
		{"token undecodable basic", tsTokenPath, "Basic !!!", "", okForm, badClient},
		{"token basic without colon", tsTokenPath, "Basic YXBwLWtleQ==", "", okForm, badClient},
		{"token bad creds and no grant", tsTokenPath, basic(appKey, "nope"), "", "", badClient},
		{"token missing grant_type", tsTokenPath, basic(appKey, appSecret), "", "scope=x", badRequest},
		{"token empty body", tsTokenPath, basic(appKey, appSecret), "", "", badRequest},
		{"token wrong grant_type", tsTokenPath, basic(appKey, appSecret), "", "grant_type=password", badRequest},
		{"token grant_type as JSON", tsTokenPath, basic(appKey, appSecret), "application/json", `{"grant_type":"client_credentials"}`, badRequest},
		{"revoke no auth", tsRevokePath, "", "", okForm, missing},
		{"revoke wrong secret", tsRevokePath, basic(appKey, "nope"), "", okForm, badClient},
		{"revoke unknown key", tsRevokePath, basic("nobody", appSecret), "", okForm, badClient},
		{"revoke missing token", tsRevokePath, basic(appKey, appSecret), "", "grant_type=client_credentials", badRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			r := formReq(tt.path, tt.header, tt.body)
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			w := f.do(r)
			if w.Code != tt.want.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.want.status, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if tt.want.fault != "" {
				fault := faultOf(t, w.Body.Bytes())
				if fault["code"] != tt.want.fault || fault["message"] != "Missing Credentials" {
					t.Fatalf("fault %v, want code %s Missing Credentials", fault, tt.want.fault)
				}
				if d, _ := fault["description"].(string); d == "" {
					t.Fatal("fault.description is empty")
				}
				return
			}
			m := decodeMap(t, w.Body.Bytes())
			if m["error"] != tt.want.oauth {
				t.Fatalf("error %v, want %s; body %s", m["error"], tt.want.oauth, w.Body)
			}
			if d, _ := m["error_description"].(string); d == "" {
				t.Fatalf("error_description missing: %s", w.Body)
			}
			if _, isFault := m["fault"]; isFault {
				t.Fatal("OAuth error must not carry a gateway fault")
			}
		})
	}
}

func TestAuthErrorsIssueNoToken(t *testing.T) {
	f := newFixture(t, nil)
	f.do(formReq(tsTokenPath, basic(appKey, "nope"), "grant_type=client_credentials"))
	f.do(formReq(tsTokenPath, basic(appKey, appSecret), "grant_type=password"))
	f.clk.Step(time.Minute)
	if got := f.token(appKey, appSecret).ExpiresIn; got != 3600 {
		t.Fatalf("first good request got expires_in %d: a failed request minted a token", got)
	}
}

func TestValidBearer(t *testing.T) {
	f := newFixture(t, nil)
	live := f.token(appKey, appSecret).AccessToken
	other := f.token(otherKey, otherSec).AccessToken

	tests := []struct {
		name  string
		token string
		want  bool
	}{
		{"live", live, true},
		{"other app live", other, true},
		{"empty", "", false},
		{"unknown", "00000000-0000-4000-8000-000000000000", false},
	}
	for _, tt := range tests {
		if got := f.srv.ValidBearer(tt.token); got != tt.want {
			t.Errorf("%s: ValidBearer = %v, want %v", tt.name, got, tt.want)
		}
	}

	f.srv.RemoveApp(otherKey)
	if f.srv.ValidBearer(other) {
		t.Error("token of a removed app still valid")
	}
	if !f.srv.ValidBearer(live) {
		t.Error("removing one app ended another app's token")
	}
}

func TestSetApp(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(appKey, appSecret).AccessToken

	f.srv.SetApp(appKey, appSecret)
	if !f.srv.ValidBearer(tok) {
		t.Fatal("re-setting the same secret ended the token")
	}

	f.srv.SetApp(appKey, "rotated")
	if f.srv.ValidBearer(tok) {
		t.Fatal("changing the secret kept the old token alive")
	}
	if w := f.do(formReq(tsTokenPath, basic(appKey, appSecret), "grant_type=client_credentials")); w.Code != http.StatusUnauthorized {
		t.Fatalf("old secret: status %d, want 401", w.Code)
	}
	if f.token(appKey, "rotated").AccessToken == tok {
		t.Fatal("new secret got the old token")
	}

	f.srv.SetApp("new-app", "s")
	f.token("new-app", "s")

	f.srv.RemoveApp("new-app")
	if w := f.do(formReq(tsTokenPath, basic("new-app", "s"), "grant_type=client_credentials")); w.Code != http.StatusUnauthorized {
		t.Fatalf("removed app: status %d, want 401", w.Code)
	}
}

func TestConfigAppsCopied(t *testing.T) {
	apps := map[string]string{appKey: appSecret}
	f := newFixture(t, func(c *Config) { c.Apps = apps })
	apps[appKey] = "changed"
	f.token(appKey, appSecret)
}

func TestUnknownAPIResource(t *testing.T) {
	tests := []struct{ method, path string }{
		{http.MethodGet, tsTokenPath},
		{http.MethodPost, "/api/m2m/v1/devices/actions/list"},
		{http.MethodGet, "/api/m2m/v1/session/login"},
		{http.MethodGet, "/api/nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			f := newFixture(t, nil)
			r := formReq(tt.path, basic(appKey, appSecret), "")
			r.Method = tt.method
			w := f.do(r)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", w.Code)
			}
			if code := faultOf(t, w.Body.Bytes())["code"]; code != "900906" {
				t.Fatalf("fault code %v, want 900906", code)
			}
		})
	}
}

// Issue 8 scenario 12: with ExpiryGrace the gateway answers a token request past the lifetime with the
// same token and expires_in 0, keeps it usable meanwhile, and mints a new one after the grace.
func TestExpiryGraceAnswersSameTokenWithZeroLifetime(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.TokenLifetime = 90 * time.Second; c.ExpiryGrace = 3 * time.Second })
	first := f.token(appKey, appSecret)
	f.clk.Step(90 * time.Second)
	for range 2 {
		again := f.token(appKey, appSecret)
		if again.AccessToken != first.AccessToken || again.ExpiresIn != 0 {
			t.Fatalf("in the grace period: same token %v, expires_in %d; want the same token and 0",
				again.AccessToken == first.AccessToken, again.ExpiresIn)
		}
		if !f.srv.ValidBearer(first.AccessToken) {
			t.Fatal("the token should still work as a Bearer in the grace period")
		}
		f.clk.Step(time.Second)
	}
	f.clk.Step(time.Second)
	if f.srv.ValidBearer(first.AccessToken) {
		t.Fatal("token valid after its grace")
	}
	next := f.token(appKey, appSecret)
	if next.AccessToken == first.AccessToken || next.ExpiresIn != 90 {
		t.Fatalf("after the grace: same token %v, expires_in %d", next.AccessToken == first.AccessToken, next.ExpiresIn)
	}
	// Switched off at run time, a token past its lifetime is gone at once.
	f.srv.SetExpiryGrace(0)
	f.clk.Step(90 * time.Second)
	if f.srv.ValidBearer(next.AccessToken) {
		t.Fatal("grace 0: token valid at its expiry")
	}
}
