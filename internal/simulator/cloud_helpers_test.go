package simulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

const (
	cloudID       = "cloud-client"
	cloudSecret   = "cloud-secret"
	cloudCallback = "https://app.example.com/Oauth/Callback?tenant=a"
	cloudOtherID  = "cloud-other"
	cloudOtherSec = "cloud-other-secret"
	cloudOtherCB  = "https://other.example.com/cb"

	cloudAuthorizeRoute = "GET " + cloudAuthorizePath
	cloudTokenRoute     = "POST " + cloudTokenPath
	cloudAccountRoute   = "GET " + cloudAccountPath
)

// newCloudFixture is newFixture with two Verizon Cloud clients.
func newCloudFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	return newFixture(t, func(c *Config) {
		c.CloudApps = map[string]CloudApp{
			cloudID:      {Secret: cloudSecret, CallbackURL: cloudCallback},
			cloudOtherID: {Secret: cloudOtherSec, CallbackURL: cloudOtherCB},
		}
		if mutate != nil {
			mutate(c)
		}
	})
}

// authQuery is a well-formed authorize query; state "" leaves it out.
func authQuery(clientID, redirectURI, state string) url.Values {
	v := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}}
	if state != "" {
		v.Set("state", state)
	}
	return v
}

func (f *fixture) authorize(q url.Values) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(httptest.NewRequest(http.MethodGet, cloudAuthorizePath+"?"+q.Encode(), nil))
}

// redirectOf insists on a 302 and returns its Location, parsed.
func redirectOf(t *testing.T, w *httptest.ResponseRecorder) *url.URL {
	t.Helper()
	if w.Code != http.StatusFound {
		t.Fatalf("authorize: status %d, want 302; body %s", w.Code, w.Body)
	}
	u, err := url.Parse(w.Header().Get("Location"))
	if err != nil {
		t.Fatalf("Location %q: %v", w.Header().Get("Location"), err)
	}
	return u
}

// code runs authorize for clientID with its registered callback and returns
// the code.
func (f *fixture) code(clientID, callback string) string {
	f.t.Helper()
	c := redirectOf(f.t, f.authorize(authQuery(clientID, callback, ""))).Query().Get("code")
	if c == "" {
		f.t.Fatal("authorize redirected without a code")
	}
	return c
}

func (f *fixture) cloudToken(auth string, form url.Values) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(formReq(cloudTokenPath, auth, form.Encode()))
}

func (f *fixture) exchange(code string) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.cloudToken(basic(cloudID, cloudSecret), url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {cloudCallback},
	})
}

func (f *fixture) refresh(refreshToken string) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.cloudToken(basic(cloudID, cloudSecret), url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refreshToken},
	})
}

// tokensOf insists on a well-formed 200 token response.
func tokensOf(t *testing.T, w *httptest.ResponseRecorder) cloudTokens {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("token: status %d, body %s", w.Code, w.Body)
	}
	m := decodeMap(t, w.Body.Bytes())
	if _, ok := m["expires_in"].(float64); !ok || len(m) != 4 {
		t.Fatalf("token body %s: want exactly access_token, refresh_token, expires_in (number), token_type", w.Body)
	}
	var tb cloudTokens
	if err := json.Unmarshal(w.Body.Bytes(), &tb); err != nil {
		t.Fatal(err)
	}
	if tb.AccessToken == "" || tb.RefreshToken == "" || tb.AccessToken == tb.RefreshToken || tb.TokenType != "Bearer" {
		t.Fatalf("token body %s", w.Body)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Fatal("token response must not be cacheable")
	}
	return tb
}

// grant runs authorize and the code exchange for cloudID.
func (f *fixture) grant() cloudTokens {
	f.t.Helper()
	return tokensOf(f.t, f.exchange(f.code(cloudID, cloudCallback)))
}

func (f *fixture) cloudAccount(auth string) *httptest.ResponseRecorder {
	f.t.Helper()
	r := httptest.NewRequest(http.MethodGet, cloudAccountPath, nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return f.do(r)
}

// oauthErrorOf insists on status and exactly {"error":code,
// "error_description":<non-empty>} and returns the description.
func oauthErrorOf(t *testing.T, w *httptest.ResponseRecorder, status int, code string) string {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	m := decodeMap(t, w.Body.Bytes())
	desc, _ := m["error_description"].(string)
	if len(m) != 2 || m["error"] != code || desc == "" {
		t.Fatalf("body %s, want error %q with a description", w.Body, code)
	}
	if loc := w.Header().Get("Location"); loc != "" {
		t.Fatalf("an error must not redirect, Location %q", loc)
	}
	return desc
}
