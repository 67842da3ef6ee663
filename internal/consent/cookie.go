package consent

import (
	"crypto/subtle"
	"net/http"
	"time"
)

// The browser-binding cookie. Its name carries a prefix of the state hash, so one browser can run
// several consents at once (a tab per CloudAuthorization); its value is the start token, which only the
// browser that opened the link and the consent Secret hold.
//
// With an https callbackURL it is a `__Host-` cookie: Secure, Path=/, no Domain, so neither plain http
// nor a sibling host can set or read it. With a plain http callbackURL (allowed only with
// --allow-insecure-endpoints: tests and the simulator) a browser would drop a Secure cookie, so the
// cookie there has no prefix and no Secure flag; it is bound to the state all the same.
const (
	cookieSecurePrefix   = "__Host-thingspace-consent-"
	cookieInsecurePrefix = "thingspace-consent-"
	// cookieIDLen characters of the state hash name the cookie: enough to tell a browser's consents apart.
	cookieIDLen = 16
)

// CookieName is the name of the cookie for state; secure for an https callbackURL.
func CookieName(state string, secure bool) string {
	id := Hash(state)[:cookieIDLen]
	if secure {
		return cookieSecurePrefix + id
	}
	return cookieInsecurePrefix + id
}

// Cookie is the cookie the start endpoint sets for token, living until expires.
func Cookie(token string, secure bool, expires, now time.Time) *http.Cookie {
	return &http.Cookie{
		Name: CookieName(State(token), secure), Value: token, Path: "/",
		MaxAge: max(int(expires.Sub(now).Seconds()), 1), Secure: secure, HttpOnly: true,
		// Lax: sent on the top-level GET navigation back from Verizon, not on cross-site subrequests.
		SameSite: http.SameSiteLaxMode,
	}
}

// ExpiredCookie removes the cookie for state once its consent is over.
func ExpiredCookie(state string, secure bool) *http.Cookie {
	return &http.Cookie{Name: CookieName(state, secure), Value: "", Path: "/", MaxAge: -1, Secure: secure,
		HttpOnly: true, SameSite: http.SameSiteLaxMode}
}

// CookieCheck is what a request's cookies say about state.
type CookieCheck int

const (
	// CookieMissing: no cookie of state's name.
	CookieMissing CookieCheck = iota
	// CookieMismatch: a cookie of that name whose value is not the token of state.
	CookieMismatch
	// CookieSecure and CookieInsecure: the right token, in the `__Host-` cookie or the plain one.
	CookieSecure
	CookieInsecure
)

// CheckCookie looks for the cookie binding state in r: its value must be the start token T with
// State(T) == state, compared in constant time. It needs no lookup, so a callback without the right
// cookie is refused before anything is read or spent.
func CheckCookie(r *http.Request, state string) CookieCheck {
	found := CookieMissing
	for _, secure := range []bool{true, false} {
		c, err := r.Cookie(CookieName(state, secure))
		if err != nil {
			continue
		}
		if WellFormed(c.Value) && subtle.ConstantTimeCompare([]byte(State(c.Value)), []byte(state)) == 1 {
			if secure {
				return CookieSecure
			}
			return CookieInsecure
		}
		found = CookieMismatch
	}
	return found
}
