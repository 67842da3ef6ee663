package simulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	uwsUser  = "uws-user"
	uwsPass  = "Init1al-Pass"
	uwsOther = "uws-other"
	uwsOPass = "Other-Pass9"

	loginRoute   = "POST " + m2mLoginPath
	logoutRoute  = "POST " + m2mLogoutPath
	resetRoute   = "PUT " + m2mResetPath
	accountRoute = "GET " + m2mAccountPath

	testAccount = "0000123456-00001"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// newM2MFixture is newFixture with two UWS users, plus a live bearer token.
func newM2MFixture(t *testing.T, mutate func(*Config)) (*fixture, string) {
	t.Helper()
	f := newFixture(t, func(c *Config) {
		c.M2MUsers = map[string]string{uwsUser: uwsPass, uwsOther: uwsOPass}
		if mutate != nil {
			mutate(c)
		}
	})
	return f, f.token(appKey, appSecret).AccessToken
}

// m2mReq builds an M2M request; bearer and session "" leave the header out.
func m2mReq(method, path, bearer, session, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	if session != "" {
		r.Header.Set(M2MTokenHeader, session)
	}
	return r
}

func loginBody(user, pass string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	return string(b)
}

func resetBody(old string) string {
	b, _ := json.Marshal(map[string]string{"oldPassword": old})
	return string(b)
}

func accountPath(name string) string { return "/api/m2m/v1/accounts/" + name }

func (f *fixture) login(bearer, user, pass string) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(m2mReq(http.MethodPost, m2mLoginPath, bearer, "", loginBody(user, pass)))
}

// mustLogin logs in and insists on a well-formed 200.
func (f *fixture) mustLogin(bearer, user, pass string) string {
	f.t.Helper()
	w := f.login(bearer, user, pass)
	if w.Code != http.StatusOK {
		f.t.Fatalf("login: status %d, body %s", w.Code, w.Body)
	}
	m := decodeMap(f.t, w.Body.Bytes())
	tok, _ := m["sessionToken"].(string)
	if len(m) != 1 || !uuidRE.MatchString(tok) {
		f.t.Fatalf("login body %s: want exactly {\"sessionToken\":<uuid>}", w.Body)
	}
	return tok
}

func (f *fixture) account(bearer, session string) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(m2mReq(http.MethodGet, accountPath(testAccount), bearer, session, ""))
}

func (f *fixture) reset(bearer, session, old string) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(m2mReq(http.MethodPut, m2mResetPath, bearer, session, resetBody(old)))
}

func (f *fixture) logout(bearer, session string) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(m2mReq(http.MethodPost, m2mLogoutPath, bearer, session, ""))
}

// m2mCodeOf returns the errorCode of an M2M error response, failing the test
// unless it is a 400 with exactly {"errorCode","errorMessage"}.
func m2mCodeOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if w.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400; body %s", w.Code, w.Body)
	}
	m := decodeMap(t, w.Body.Bytes())
	code, ok1 := m["errorCode"].(string)
	msg, ok2 := m["errorMessage"].(string)
	if len(m) != 2 || !ok1 || !ok2 || msg == "" {
		t.Fatalf("want {\"errorCode\":...,\"errorMessage\":...}, got %s", w.Body)
	}
	return code
}

func (f *fixture) user(name string) M2MUserInfo {
	f.t.Helper()
	info, ok := f.srv.M2MUser(name)
	if !ok {
		f.t.Fatalf("user %q unknown", name)
	}
	return info
}

func TestM2MGateway(t *testing.T) {
	type route struct {
		name         string
		method, path string
		needsSession bool
		body         func() string
		statsRoute   string
	}
	routes := []route{
		{"login", http.MethodPost, m2mLoginPath, false, func() string { return loginBody(uwsUser, "wrong") }, loginRoute},
		{"logout", http.MethodPost, m2mLogoutPath, true, func() string { return "" }, logoutRoute},
		{"reset", http.MethodPut, m2mResetPath, true, func() string { return resetBody(uwsPass) }, resetRoute},
		{"account", http.MethodGet, accountPath(testAccount), true, func() string { return "" }, accountRoute},
	}
	auths := []struct {
		name     string
		header   func(f *fixture, live string) string // "" sends none
		wantCode string
		wantMsg  string
	}{
		{"no Authorization", func(*fixture, string) string { return "" }, "900902", "Missing Credentials"},
		{"Basic instead of Bearer", func(*fixture, string) string { return basic(appKey, appSecret) }, "900902", "Missing Credentials"},
		{"empty Bearer", func(*fixture, string) string { return "Bearer " }, "900902", "Missing Credentials"},
		{"unknown Bearer", func(*fixture, string) string { return "Bearer 00000000-0000-4000-8000-000000000000" }, "900901", "Invalid Credentials"},
		{"expired Bearer", func(f *fixture, live string) string {
			f.clk.Step(DefaultTokenLifetime)
			return "Bearer " + live
		}, "900901", "Invalid Credentials"},
		{"revoked Bearer", func(f *fixture, live string) string {
			f.revoke(appKey, appSecret, live)
			return "Bearer " + live
		}, "900901", "Invalid Credentials"},
	}
	for _, rt := range routes {
		for _, a := range auths {
			t.Run(rt.name+"/"+a.name, func(t *testing.T) {
				// An idle timeout beyond the token lifetime keeps the session
				// live in the "expired Bearer" case: only the Bearer is wrong.
				f, live := newM2MFixture(t, func(c *Config) { c.M2MIdleTimeout = 2 * DefaultTokenLifetime })
				session := f.mustLogin(live, uwsUser, uwsPass)
				f.srv.ResetStats()
				r := m2mReq(rt.method, rt.path, "", "", rt.body())
				if h := a.header(f, live); h != "" {
					r.Header.Set("Authorization", h)
				}
				if rt.needsSession {
					r.Header.Set(M2MTokenHeader, session)
				}
				w := f.do(r)
				if w.Code != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401; body %s", w.Code, w.Body)
				}
				fault := faultOf(t, w.Body.Bytes())
				if fault["code"] != a.wantCode || fault["message"] != a.wantMsg {
					t.Fatalf("fault %v, want %s %q", fault, a.wantCode, a.wantMsg)
				}
				if got := f.srv.Stats().Count(rt.statsRoute, 401); got != 1 {
					t.Fatalf("stats %v", f.srv.Stats().Requests)
				}
				// The gateway stopped the request: nothing behind it changed.
				if u := f.user(uwsUser); u.ConsecutiveFailures != 0 || u.Password != uwsPass || u.Logins != 1 {
					t.Fatalf("user state changed behind a gateway 401: %+v", u)
				}
				if f.srv.ActiveM2MSessions() != 1 {
					t.Fatal("session state changed behind a gateway 401")
				}
			})
		}
	}
}

func TestM2MLogin(t *testing.T) {
	f, bearer := newM2MFixture(t, nil)
	seen := map[string]bool{}
	for i := 1; i <= 3; i++ {
		tok := f.mustLogin(bearer, uwsUser, uwsPass)
		if seen[tok] {
			t.Fatal("a login returned an existing session token")
		}
		seen[tok] = true
		if got := f.srv.ActiveM2MSessions(); got != i {
			t.Fatalf("active sessions %d, want %d", got, i)
		}
	}
	other := f.mustLogin(bearer, uwsOther, uwsOPass)
	if u := f.user(uwsUser); u.Logins != 3 || u.ActiveSessions != 3 || u.Locked || u.ConsecutiveFailures != 0 {
		t.Fatalf("user %+v", u)
	}
	if u := f.user(uwsOther); u.Logins != 1 || u.ActiveSessions != 1 {
		t.Fatalf("other user %+v", u)
	}
	// Every session works, and the app token of another app is as good.
	otherBearer := f.token(otherKey, otherSec).AccessToken
	for tok := range seen {
		if w := f.account(otherBearer, tok); w.Code != http.StatusOK {
			t.Fatalf("account: %d %s", w.Code, w.Body)
		}
	}
	if w := f.account(bearer, other); w.Code != http.StatusOK {
		t.Fatalf("account: %d %s", w.Code, w.Body)
	}
}

func TestM2MLoginErrors(t *testing.T) {
	tests := []struct {
		name         string
		body         string
		wantCode     string
		wantFailures int // of uwsUser afterwards
	}{
		{"wrong password", loginBody(uwsUser, "Wrong-Pass1"), m2mCodePasswordInvalid, 1},
		{"empty password", loginBody(uwsUser, ""), m2mCodePasswordInvalid, 1},
		{"another user's password", loginBody(uwsUser, uwsOPass), m2mCodePasswordInvalid, 1},
		{"password differs in case", loginBody(uwsUser, strings.ToLower(uwsPass)), m2mCodePasswordInvalid, 1},
		{"unknown user", loginBody("nobody", uwsPass), m2mCodePasswordInvalid, 0},
		{"no username", `{"password":"` + uwsPass + `"}`, m2mCodePasswordInvalid, 0},
		{"not json", `username=` + uwsUser, m2mCodeBodyInvalid, 0},
		{"empty body", ``, m2mCodeBodyInvalid, 0},
		{"wrong types", `{"username":1,"password":true}`, m2mCodeBodyInvalid, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, bearer := newM2MFixture(t, nil)
			w := f.do(m2mReq(http.MethodPost, m2mLoginPath, bearer, "", tt.body))
			if got := m2mCodeOf(t, w); got != tt.wantCode {
				t.Fatalf("errorCode %q, want %q", got, tt.wantCode)
			}
			if strings.Contains(w.Body.String(), uwsPass) {
				t.Fatal("the error echoes the password")
			}
			if u := f.user(uwsUser); u.ConsecutiveFailures != tt.wantFailures || u.Logins != 0 {
				t.Fatalf("user %+v, want %d failures", u, tt.wantFailures)
			}
			if f.srv.ActiveM2MSessions() != 0 {
				t.Fatal("a failed login opened a session")
			}
			if _, ok := f.srv.M2MUser("nobody"); ok {
				t.Fatal("a login created a user")
			}
		})
	}
}

func TestM2MLockout(t *testing.T) {
	const customLocked = "UnifiedWebService.REQUEST_FAILED.Account.Locked"
	tests := []struct {
		name       string
		lockedCode string // Config.M2MLockedCode
		steps      []string
		wantLocked bool
		wantCode   string // of a final login with the RIGHT password; "" = success
	}{
		{"four failures do not lock", "", []string{"bad", "bad", "bad", "bad"}, false, ""},
		{"five failures lock", "", []string{"bad", "bad", "bad", "bad", "bad"}, true, DefaultM2MLockedCode},
		{"six failures stay locked", "", []string{"bad", "bad", "bad", "bad", "bad", "bad"}, true, DefaultM2MLockedCode},
		{"a success resets the count", "", []string{"bad", "bad", "bad", "bad", "ok", "bad", "bad", "bad", "bad"}, false, ""},
		{"configured locked code", customLocked, []string{"bad", "bad", "bad", "bad", "bad"}, true, customLocked},
		{"failures of another user do not count", "", []string{"other", "other", "other", "other", "other", "bad"}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, bearer := newM2MFixture(t, func(c *Config) { c.M2MLockedCode = tt.lockedCode })
			for i, st := range tt.steps {
				var w *httptest.ResponseRecorder
				switch st {
				case "bad":
					w = f.login(bearer, uwsUser, "Wrong-Pass1")
				case "other":
					w = f.login(bearer, uwsOther, "Wrong-Pass1")
				case "ok":
					f.mustLogin(bearer, uwsUser, uwsPass)
					continue
				}
				// The failure that locks still reads as a wrong password;
				// only later attempts see the lock.
				want := m2mCodePasswordInvalid
				if i >= M2MLockoutThreshold && st == "bad" && tt.wantLocked {
					want = f.srv.m2m.lockedCode
				}
				if got := m2mCodeOf(t, w); got != want {
					t.Fatalf("step %d: errorCode %q, want %q", i, got, want)
				}
			}
			if u := f.user(uwsUser); u.Locked != tt.wantLocked {
				t.Fatalf("locked = %v, want %v (%+v)", u.Locked, tt.wantLocked, u)
			}

			w := f.login(bearer, uwsUser, uwsPass)
			if tt.wantCode == "" {
				if w.Code != http.StatusOK {
					t.Fatalf("right password: %d %s", w.Code, w.Body)
				}
				if u := f.user(uwsUser); u.ConsecutiveFailures != 0 {
					t.Fatalf("success did not reset the count: %+v", u)
				}
				return
			}
			if got := m2mCodeOf(t, w); got != tt.wantCode {
				t.Fatalf("right password while locked: errorCode %q, want %q", got, tt.wantCode)
			}
			if f.srv.ActiveM2MSessions() != 0 {
				t.Fatal("a locked user got a session")
			}
			// Locked until support unlocks it, however long we wait.
			f.clk.Step(30 * 24 * time.Hour)
			if got := m2mCodeOf(t, f.login(f.token(appKey, appSecret).AccessToken, uwsUser, uwsPass)); got != tt.wantCode {
				t.Fatalf("after a month: errorCode %q", got)
			}
			bearer = f.token(appKey, appSecret).AccessToken
			if !f.srv.UnlockM2MUser(uwsUser) {
				t.Fatal("unlock: unknown user")
			}
			if u := f.user(uwsUser); u.Locked || u.ConsecutiveFailures != 0 {
				t.Fatalf("after unlock %+v", u)
			}
			f.mustLogin(bearer, uwsUser, uwsPass)
			// Unlocking starts a fresh count: four failures do not relock.
			for range M2MLockoutThreshold - 1 {
				f.login(bearer, uwsUser, "Wrong-Pass1")
			}
			f.mustLogin(bearer, uwsUser, uwsPass)
		})
	}
	f, _ := newM2MFixture(t, nil)
	if f.srv.UnlockM2MUser("nobody") {
		t.Fatal("unlocking an unknown user reported success")
	}
}
