package simulator

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// tiedLifetime is the token lifetime of the tied-mode tests: shorter than the idle timeout, so a
// token can die while its session is in use.
const tiedLifetime = 10 * time.Minute

func TestM2MSessionTiedToBearer(t *testing.T) {
	// Each case logs in with the appKey token A at epoch, then does something and makes one account
	// call with the bearer it returns. want is that call's outcome, untied and tied: "200" or an
	// errorCode.
	tests := []struct {
		name        string
		act         func(f *fixture, a string) (bearer string)
		untied, tie string
	}{
		{"the login's bearer", func(_ *fixture, a string) string { return a }, "200", "200"},
		{"another app's live bearer", func(f *fixture, _ string) string {
			return f.token(otherKey, otherSec).AccessToken
		}, "200", m2mCodeSessionInvalid},
		{"its app's next token after the login's expired", func(f *fixture, _ string) string {
			f.clk.Step(tiedLifetime)
			return f.token(appKey, appSecret).AccessToken
		}, "200", m2mCodeSessionExpired},
		{"another live bearer after the login's was revoked", func(f *fixture, a string) string {
			if w := f.revoke(appKey, appSecret, a); w.Header().Get(RevokedTokenHeader) != a {
				f.t.Fatal("revoke did not revoke")
			}
			return f.token(otherKey, otherSec).AccessToken
		}, "200", m2mCodeSessionExpired},
		{"the login's bearer just before it expires", func(f *fixture, a string) string {
			f.clk.Step(tiedLifetime - time.Second)
			return a
		}, "200", "200"},
	}
	for _, tt := range tests {
		for _, tied := range []bool{false, true} {
			want := tt.untied
			if tied {
				want = tt.tie
			}
			t.Run(tt.name+"/tied="+map[bool]string{false: "off", true: "on"}[tied], func(t *testing.T) {
				f, a := newM2MFixture(t, func(c *Config) {
					c.TokenLifetime = tiedLifetime
					c.M2MSessionTiedToBearer = tied
				})
				s := f.mustLogin(a, uwsUser, uwsPass)
				w := f.account(tt.act(f, a), s)
				if want == "200" {
					if w.Code != http.StatusOK {
						t.Fatalf("account: %d %s, want 200", w.Code, w.Body)
					}
					return
				}
				if got := m2mCodeOf(t, w); got != want {
					t.Fatalf("errorCode %q, want %q", got, want)
				}
			})
		}
	}
}

// TestM2MTiedHandover walks the overlap a standby key set gives: the old pair keeps working to the
// old token's expiry in both modes, a login with the new token makes a pair that outlives it, and a
// refusal for the wrong Bearer leaves the session alone.
func TestM2MTiedHandover(t *testing.T) {
	for _, tied := range []bool{false, true} {
		f, a := newM2MFixture(t, func(c *Config) {
			c.TokenLifetime = tiedLifetime
			c.M2MSessionTiedToBearer = tied
		})
		oldS := f.mustLogin(a, uwsUser, uwsPass)
		f.clk.Step(tiedLifetime / 2)
		b := f.token(otherKey, otherSec).AccessToken // the standby key's fresh token
		newS := f.mustLogin(b, uwsUser, uwsPass)
		if w := f.account(b, oldS); (w.Code == http.StatusOK) == tied {
			t.Fatalf("tied=%v: the old session with the new bearer answered %d", tied, w.Code)
		}
		for _, pair := range [][2]string{{a, oldS}, {b, newS}} {
			if w := f.account(pair[0], pair[1]); w.Code != http.StatusOK {
				t.Fatalf("tied=%v: a pair within the window: %d %s", tied, w.Code, w.Body)
			}
		}
		if n := f.srv.ActiveM2MSessions(); n != 2 {
			t.Fatalf("tied=%v: %d active sessions, want 2", tied, n)
		}
		f.clk.Step(tiedLifetime / 2) // A expires
		if w := f.account(b, newS); w.Code != http.StatusOK {
			t.Fatalf("tied=%v: the new pair after the old token expired: %d %s", tied, w.Code, w.Body)
		}
		wantActive := 2
		if tied {
			wantActive = 1
		}
		if n := f.srv.ActiveM2MSessions(); n != wantActive {
			t.Fatalf("tied=%v: %d active sessions, want %d", tied, n, wantActive)
		}
	}
}

func TestM2MAdminSessionTied(t *testing.T) {
	f, a := newM2MFixture(t, nil)
	s := f.mustLogin(a, uwsUser, uwsPass)
	other := f.token(otherKey, otherSec).AccessToken
	put := func(body string) int {
		return f.do(httptest.NewRequest(http.MethodPut, "/admin/m2m/session-tied", strings.NewReader(body))).Code
	}
	for _, body := range []string{`{}`, `{"tied":"yes"}`, `{"on":true}`, `x`} {
		if code := put(body); code != http.StatusBadRequest {
			t.Fatalf("session-tied %s: %d, want 400", body, code)
		}
	}
	if w := f.account(other, s); w.Code != http.StatusOK {
		t.Fatalf("untied by default: %d", w.Code)
	}
	if code := put(`{"tied":true}`); code != http.StatusNoContent {
		t.Fatalf("session-tied on: %d", code)
	}
	// A session from before the switch is tied too.
	if got := m2mCodeOf(t, f.account(other, s)); got != m2mCodeSessionInvalid {
		t.Fatalf("tied: %q", got)
	}
	if w := f.account(a, s); w.Code != http.StatusOK {
		t.Fatalf("tied, own bearer: %d", w.Code)
	}
	if code := put(`{"tied":false}`); code != http.StatusNoContent {
		t.Fatalf("session-tied off: %d", code)
	}
	if w := f.account(other, s); w.Code != http.StatusOK {
		t.Fatalf("untied again: %d", w.Code)
	}
}
