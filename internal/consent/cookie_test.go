package consent

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The cookie binds the state: only the start token of that state passes, compared in constant time;
// the name tells the strict __Host- cookie (https callbacks) from the plain one (http, insecure mode).
func TestCheckCookie(t *testing.T) {
	link, _, err := (&Store{}).Ensure(cloudAuth().Status.DeepCopy(), cloudAuth(), "", t0)
	must(t, err)
	tok := TokenOf(link)
	state := State(tok)
	otherLink, _, _ := (&Store{}).Ensure(cloudAuth().Status.DeepCopy(), cloudAuth(), "", t0)
	other := TokenOf(otherLink)
	for _, c := range []struct {
		name    string
		cookies []*http.Cookie
		want    CookieCheck
	}{
		{"none", nil, CookieMissing},
		{"another consent's cookie", []*http.Cookie{Cookie(other, true, t0.Add(time.Minute), t0)}, CookieMissing},
		{"the state itself as value", []*http.Cookie{{Name: CookieName(state, true), Value: state}}, CookieMismatch},
		{"another token under this name", []*http.Cookie{{Name: CookieName(state, true), Value: other}}, CookieMismatch},
		{"garbage", []*http.Cookie{{Name: CookieName(state, false), Value: "x"}}, CookieMismatch},
		{"secure", []*http.Cookie{Cookie(tok, true, t0.Add(time.Minute), t0)}, CookieSecure},
		{"insecure", []*http.Cookie{Cookie(tok, false, t0.Add(time.Minute), t0)}, CookieInsecure},
	} {
		r := httptest.NewRequest(http.MethodGet, "/oauth2/callback", nil)
		for _, ck := range c.cookies {
			r.AddCookie(ck)
		}
		if got := CheckCookie(r, state); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	sc := Cookie(tok, true, t0.Add(90*time.Second), t0)
	if !strings.HasPrefix(sc.Name, "__Host-") || !sc.Secure || !sc.HttpOnly || sc.Path != "/" || sc.Domain != "" ||
		sc.SameSite != http.SameSiteLaxMode || sc.MaxAge != 90 || sc.Value != tok {
		t.Errorf("secure cookie %+v", sc)
	}
	if ic := Cookie(tok, false, t0, t0); strings.HasPrefix(ic.Name, "__Host-") || ic.Secure || !ic.HttpOnly || ic.MaxAge != 1 {
		t.Errorf("insecure cookie %+v", ic)
	}
	if strings.Contains(sc.Name, state) || strings.Contains(sc.Name, tok) {
		t.Error("the cookie's name carries the state or the token")
	}
	if e := ExpiredCookie(state, true); e.MaxAge >= 0 || e.Name != sc.Name {
		t.Errorf("expired cookie %+v", e)
	}
}
