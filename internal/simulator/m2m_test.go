package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
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

func TestM2MIdleExpiry(t *testing.T) {
	tests := []struct {
		name string
		idle time.Duration // Config.M2MIdleTimeout; 0 = default
		want time.Duration
	}{
		{"default 20m", 0, 20 * time.Minute},
		{"configured", 90 * time.Second, 90 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newM2MFixture(t, func(c *Config) {
				c.M2MIdleTimeout = tt.idle
				c.TokenLifetime = 100 * 24 * time.Hour // keep the Bearer out of the way
			})
			bearer := f.token(appKey, appSecret).AccessToken
			session := f.mustLogin(bearer, uwsUser, uwsPass)

			// Each use just before the deadline restarts the clock.
			for i := range 3 {
				f.clk.Step(tt.want - time.Nanosecond)
				if w := f.account(bearer, session); w.Code != http.StatusOK {
					t.Fatalf("keep-alive %d: %d %s", i, w.Code, w.Body)
				}
			}
			// A reset is a use too.
			f.clk.Step(tt.want - time.Nanosecond)
			w := f.reset(bearer, session, uwsPass)
			if w.Code != http.StatusOK {
				t.Fatalf("reset: %d %s", w.Code, w.Body)
			}
			newPass := f.user(uwsUser).Password
			f.clk.Step(tt.want - time.Nanosecond)
			if w := f.account(bearer, session); w.Code != http.StatusOK {
				t.Fatalf("after reset: %d %s", w.Code, w.Body)
			}
			// A failed call is not: a wrong old password does not refresh.
			f.clk.Step(tt.want / 2)
			if got := m2mCodeOf(t, f.reset(bearer, session, "Wrong-Pass1")); got != m2mCodePasswordInvalid {
				t.Fatalf("wrong old password: %q", got)
			}
			f.clk.Step(tt.want - tt.want/2 - time.Nanosecond)
			if f.srv.ActiveM2MSessions() != 1 {
				t.Fatal("session gone before its deadline")
			}
			f.clk.Step(time.Nanosecond) // exactly the idle timeout since the last success
			if f.srv.ActiveM2MSessions() != 0 {
				t.Fatal("session live at its deadline")
			}
			for name, w := range map[string]*httptest.ResponseRecorder{
				"account": f.account(bearer, session),
				"reset":   f.reset(bearer, session, newPass),
				"logout":  f.logout(bearer, session),
			} {
				if got := m2mCodeOf(t, w); got != m2mCodeSessionExpired {
					t.Fatalf("%s after idle: errorCode %q, want %q", name, got, m2mCodeSessionExpired)
				}
			}
			if f.user(uwsUser).Password != newPass {
				t.Fatal("a reset on an expired session changed the password")
			}
			// A new login works with the current password.
			f.mustLogin(bearer, uwsUser, newPass)
		})
	}
}

func TestM2MSessionErrors(t *testing.T) {
	type call func(f *fixture, bearer, session string) *httptest.ResponseRecorder
	calls := map[string]call{
		"logout":  (*fixture).logout,
		"account": (*fixture).account,
		"reset": func(f *fixture, bearer, session string) *httptest.ResponseRecorder {
			return f.reset(bearer, session, uwsPass)
		},
	}
	states := []struct {
		name    string
		session func(f *fixture, bearer string) string
		want    string
	}{
		{"missing", func(*fixture, string) string { return "" }, m2mCodeSessionInvalid},
		{"unknown", func(*fixture, string) string { return "00000000-0000-4000-8000-000000000000" }, m2mCodeSessionInvalid},
		{"the app token instead", func(_ *fixture, bearer string) string { return bearer }, m2mCodeSessionInvalid},
		{"logged out", func(f *fixture, bearer string) string {
			s := f.mustLogin(bearer, uwsUser, uwsPass)
			if w := f.logout(bearer, s); w.Code != http.StatusOK {
				f.t.Fatalf("logout %d", w.Code)
			}
			return s
		}, m2mCodeSessionInvalid},
		{"idled out", func(f *fixture, bearer string) string {
			s := f.mustLogin(bearer, uwsUser, uwsPass)
			f.clk.Step(DefaultM2MIdleTimeout)
			return s
		}, m2mCodeSessionExpired},
		{"expired by admin", func(f *fixture, bearer string) string {
			s := f.mustLogin(bearer, uwsUser, uwsPass)
			if n := f.srv.ExpireM2MSessions(); n != 1 {
				f.t.Fatalf("ExpireM2MSessions = %d, want 1", n)
			}
			return s
		}, m2mCodeSessionExpired},
		{"expired long ago is forgotten", func(f *fixture, bearer string) string {
			s := f.mustLogin(bearer, uwsUser, uwsPass)
			f.clk.Step(DefaultM2MIdleTimeout + m2mTombstoneTTL)
			f.mustLogin(f.token(appKey, appSecret).AccessToken, uwsOther, uwsOPass) // sweeps
			return s
		}, m2mCodeSessionInvalid},
	}
	for name, c := range calls {
		for _, st := range states {
			t.Run(name+"/"+st.name, func(t *testing.T) {
				f, bearer := newM2MFixture(t, nil)
				session := st.session(f, bearer)
				bearer = f.token(appKey, appSecret).AccessToken // the clock may have moved
				if got := m2mCodeOf(t, c(f, bearer, session)); got != st.want {
					t.Fatalf("errorCode %q, want %q", got, st.want)
				}
				if f.user(uwsUser).Password != uwsPass {
					t.Fatal("password changed without a live session")
				}
			})
		}
	}
}

func TestM2MLogout(t *testing.T) {
	f, bearer := newM2MFixture(t, nil)
	a := f.mustLogin(bearer, uwsUser, uwsPass)
	b := f.mustLogin(bearer, uwsUser, uwsPass)

	w := f.logout(bearer, a)
	if w.Code != http.StatusOK {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}
	if m := decodeMap(t, w.Body.Bytes()); len(m) != 1 || m["sessionToken"] != a {
		t.Fatalf("logout body %s, want {\"sessionToken\":<the ended token>}", w.Body)
	}
	if got := m2mCodeOf(t, f.account(bearer, a)); got != m2mCodeSessionInvalid {
		t.Fatalf("ended session: %q", got)
	}
	if got := m2mCodeOf(t, f.logout(bearer, a)); got != m2mCodeSessionInvalid {
		t.Fatalf("second logout: %q", got)
	}
	if w := f.account(bearer, b); w.Code != http.StatusOK {
		t.Fatal("logout ended another session of the same user")
	}
	if f.srv.ActiveM2MSessions() != 1 {
		t.Fatalf("active %d, want 1", f.srv.ActiveM2MSessions())
	}
}

func TestM2MReset(t *testing.T) {
	passwordRE := regexp.MustCompile(`^[A-Za-z0-9]{12}$`)
	for _, endsSessions := range []bool{false, true} {
		name := "sessions survive"
		if endsSessions {
			name = "sessions end"
		}
		t.Run(name, func(t *testing.T) {
			f, bearer := newM2MFixture(t, func(c *Config) { c.ResetEndsSessions = endsSessions })
			resetter := f.mustLogin(bearer, uwsUser, uwsPass)
			sibling := f.mustLogin(bearer, uwsUser, uwsPass)
			other := f.mustLogin(bearer, uwsOther, uwsOPass)

			w := f.reset(bearer, resetter, uwsPass)
			if w.Code != http.StatusOK {
				t.Fatalf("reset: %d %s", w.Code, w.Body)
			}
			m := decodeMap(t, w.Body.Bytes())
			newPass, _ := m["newPassword"].(string)
			if len(m) != 1 || !passwordRE.MatchString(newPass) {
				t.Fatalf("reset body %s, want {\"newPassword\":<12 letters and digits>}", w.Body)
			}
			if newPass == uwsPass || f.user(uwsUser).Password != newPass {
				t.Fatal("the new password is not in force")
			}

			// Effective at once.
			if got := m2mCodeOf(t, f.login(bearer, uwsUser, uwsPass)); got != m2mCodePasswordInvalid {
				t.Fatalf("old password: %q", got)
			}
			fresh := f.mustLogin(bearer, uwsUser, newPass)

			wantOld := http.StatusOK
			if endsSessions {
				wantOld = http.StatusBadRequest
			}
			for label, s := range map[string]string{"resetting": resetter, "sibling": sibling} {
				w := f.account(bearer, s)
				if w.Code != wantOld {
					t.Fatalf("%s session after reset: %d %s", label, w.Code, w.Body)
				}
				if endsSessions {
					if got := m2mCodeOf(t, w); got != m2mCodeSessionInvalid {
						t.Fatalf("%s session: %q", label, got)
					}
				}
			}
			if w := f.account(bearer, other); w.Code != http.StatusOK {
				t.Fatal("a reset ended another user's session")
			}
			if w := f.account(bearer, fresh); w.Code != http.StatusOK {
				t.Fatal("a login after the reset does not work")
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		f, bearer := newM2MFixture(t, nil)
		s := f.mustLogin(bearer, uwsUser, uwsPass)
		for body, want := range map[string]string{
			resetBody("Wrong-Pass1"):              m2mCodePasswordInvalid,
			resetBody(uwsOPass):                   m2mCodePasswordInvalid, // another user's password
			`{}`:                                  m2mCodePasswordInvalid,
			`not json`:                            m2mCodeBodyInvalid,
			`{"oldPassword":["` + uwsPass + `"]}`: m2mCodeBodyInvalid,
		} {
			w := f.do(m2mReq(http.MethodPut, m2mResetPath, bearer, s, body))
			if got := m2mCodeOf(t, w); got != want {
				t.Fatalf("body %s: errorCode %q, want %q", body, got, want)
			}
		}
		if u := f.user(uwsUser); u.Password != uwsPass || u.Locked || u.ConsecutiveFailures != 0 {
			t.Fatalf("a refused reset changed the user: %+v", u)
		}
		if w := f.account(bearer, s); w.Code != http.StatusOK {
			t.Fatal("a refused reset ended the session")
		}
	})
}

func TestNewM2MPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 500 {
		p := newM2MPassword()
		if len(p) != m2mPasswordLen || strings.Trim(p, m2mPasswordAlphabet) != "" ||
			!strings.ContainsAny(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") ||
			!strings.ContainsAny(p, "abcdefghijklmnopqrstuvwxyz") ||
			!strings.ContainsAny(p, "0123456789") {
			t.Fatalf("password %q is not 12 letters and digits with each class", p)
		}
		if seen[p] {
			t.Fatal("password repeated: not random")
		}
		seen[p] = true
	}
}

func TestM2MAccount(t *testing.T) {
	f, bearer := newM2MFixture(t, nil)
	s := f.mustLogin(bearer, uwsUser, uwsPass)
	w := f.account(bearer, s)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("account: %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	m := decodeMap(t, w.Body.Bytes())
	if m["accountName"] != testAccount || m["accountNumber"] != "0000123456" {
		t.Fatalf("account body %s", w.Body)
	}
	// A POST is not the keep-alive: the gateway knows no such resource.
	r := m2mReq(http.MethodPost, accountPath(testAccount), bearer, s, "")
	if code := faultOf(t, f.do(r).Body.Bytes())["code"]; code != "900906" {
		t.Fatalf("POST accounts: fault %v", code)
	}
}

func TestM2MStats(t *testing.T) {
	f, bearer := newM2MFixture(t, nil)
	f.srv.ResetStats()
	s := f.mustLogin(bearer, uwsUser, uwsPass)
	f.login(bearer, uwsUser, "Wrong-Pass1")
	f.login("", uwsUser, uwsPass)
	f.account(bearer, s)
	f.do(m2mReq(http.MethodGet, accountPath("0000999999-00002"), bearer, s, ""))
	f.account(bearer, "")
	f.reset(bearer, s, "Wrong-Pass1")
	f.logout(bearer, s)
	f.logout(bearer, s)
	f.do(m2mReq(http.MethodGet, m2mLoginPath, bearer, "", ""))
	f.srv.SetFaults(Faults{Rate: 1, Status: 429})
	f.login(bearer, uwsUser, uwsPass)
	f.srv.SetFaults(Faults{})
	// Admin traffic is not counted.
	f.do(httptest.NewRequest(http.MethodGet, "/admin/m2m/sessions", nil))
	f.do(httptest.NewRequest(http.MethodGet, "/admin/m2m/users/"+uwsUser, nil))

	want := map[string]map[string]int{
		loginRoute:   {"200": 1, "400": 1, "401": 1, "429": 1},
		accountRoute: {"200": 2, "400": 1},
		resetRoute:   {"400": 1},
		logoutRoute:  {"200": 1, "400": 1},
		"GET /api/":  {"400": 1},
	}
	if got := f.srv.Stats().Requests; !reflect.DeepEqual(got, want) {
		t.Fatalf("stats\n got %v\nwant %v", got, want)
	}
	// The faulted login never reached the handler.
	if u := f.user(uwsUser); u.Logins != 1 || u.ConsecutiveFailures != 1 {
		t.Fatalf("user %+v", u)
	}
}

func TestM2MConfigUsersCopied(t *testing.T) {
	users := map[string]string{uwsUser: uwsPass}
	f, bearer := newM2MFixture(t, func(c *Config) { c.M2MUsers = users })
	users[uwsUser] = "changed"
	users["added"] = "Added-Pass1"
	f.mustLogin(bearer, uwsUser, uwsPass)
	if _, ok := f.srv.M2MUser("added"); ok {
		t.Fatal("Config.M2MUsers is not copied")
	}
}

func TestM2MSetUser(t *testing.T) {
	f, bearer := newM2MFixture(t, nil)
	s := f.mustLogin(bearer, uwsUser, uwsPass)
	for range M2MLockoutThreshold {
		f.login(bearer, uwsUser, "Wrong-Pass1")
	}
	f.srv.SetM2MUser(uwsUser, "Changed-Pass2")
	u := f.user(uwsUser)
	if u.Password != "Changed-Pass2" || !u.Locked || u.Logins != 1 || u.ConsecutiveFailures != M2MLockoutThreshold {
		t.Fatalf("SetM2MUser must change only the password: %+v", u)
	}
	if w := f.account(bearer, s); w.Code != http.StatusOK {
		t.Fatal("SetM2MUser ended a session")
	}
	f.srv.SetM2MUser("new-user", "New-Pass3")
	f.mustLogin(bearer, "new-user", "New-Pass3")
}

// TestM2MAdminOverHTTP drives /admin/m2m/* through a real listener.
func TestM2MAdminOverHTTP(t *testing.T) {
	srv := New(Config{Apps: map[string]string{appKey: appSecret}})
	ts := httptest.NewServer(srv)
	defer ts.Close()

	call := func(method, path, bearer, session, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(path, tsTokenPath) {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(appKey, appSecret)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		if session != "" {
			req.Header.Set(M2MTokenHeader, session)
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	expect := func(method, path, body string, status int) string {
		t.Helper()
		got, b := call(method, path, "", "", body)
		if got != status {
			t.Fatalf("%s %s: status %d, want %d; body %s", method, path, got, status, b)
		}
		return b
	}
	userInfo := func(name string) M2MUserInfo {
		t.Helper()
		var info M2MUserInfo
		if err := json.Unmarshal([]byte(expect("GET", "/admin/m2m/users/"+name, "", 200)), &info); err != nil {
			t.Fatal(err)
		}
		return info
	}

	expect("GET", "/admin/m2m/users/u1", "", 404)
	expect("PUT", "/admin/m2m/users/u1", `{"password":"First-Pass1"}`, 204)
	body := expect("GET", "/admin/m2m/users/u1", "", 200)
	if body != `{"locked":false,"consecutiveFailures":0,"logins":0,"password":"First-Pass1","activeSessions":0}`+"\n" {
		t.Fatalf("user body %s", body)
	}
	for _, bad := range []string{`{"password":""}`, `{"secret":"x"}`, `not json`} {
		expect("PUT", "/admin/m2m/users/u1", bad, 400)
	}

	_, tb := call("POST", tsTokenPath, "", "", "grant_type=client_credentials")
	var tok tokenBody
	if err := json.Unmarshal([]byte(tb), &tok); err != nil {
		t.Fatal(err)
	}
	for range M2MLockoutThreshold {
		if st, _ := call("POST", m2mLoginPath, tok.AccessToken, "", loginBody("u1", "nope")); st != 400 {
			t.Fatalf("bad login %d", st)
		}
	}
	if u := userInfo("u1"); !u.Locked || u.ConsecutiveFailures != M2MLockoutThreshold {
		t.Fatalf("after 5 failures %+v", u)
	}
	expect("POST", "/admin/m2m/users/u1/unlock", "", 204)
	expect("POST", "/admin/m2m/users/nobody/unlock", "", 404)
	st, b := call("POST", m2mLoginPath, tok.AccessToken, "", loginBody("u1", "First-Pass1"))
	if st != 200 {
		t.Fatalf("login after unlock: %d %s", st, b)
	}
	var sess struct{ SessionToken string }
	_ = json.Unmarshal([]byte(b), &sess)

	if b := expect("GET", "/admin/m2m/sessions", "", 200); b != `{"active":1}`+"\n" {
		t.Fatalf("sessions %s", b)
	}
	// Reset over the wire; the harness reads the new password back.
	st, b = call("PUT", m2mResetPath, tok.AccessToken, sess.SessionToken, resetBody("First-Pass1"))
	if st != 200 {
		t.Fatalf("reset %d %s", st, b)
	}
	var rb struct{ NewPassword string }
	_ = json.Unmarshal([]byte(b), &rb)
	if u := userInfo("u1"); u.Password != rb.NewPassword || u.Logins != 1 || u.ActiveSessions != 1 {
		t.Fatalf("after reset %+v", u)
	}

	if b := expect("POST", "/admin/m2m/sessions/expire", "", 200); b != `{"expired":1}`+"\n" {
		t.Fatalf("expire %s", b)
	}
	if b := expect("GET", "/admin/m2m/sessions", "", 200); b != `{"active":0}`+"\n" {
		t.Fatalf("sessions after expire %s", b)
	}
	st, b = call("GET", accountPath(testAccount), tok.AccessToken, sess.SessionToken, "")
	if st != 400 || !strings.Contains(b, m2mCodeSessionExpired) {
		t.Fatalf("account after expire: %d %s", st, b)
	}

	for route := range srv.Stats().Requests {
		if strings.Contains(route, "/admin") {
			t.Fatalf("admin route counted: %s", route)
		}
	}
}
