package simulator

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"
)

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
