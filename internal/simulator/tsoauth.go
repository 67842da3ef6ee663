package simulator

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"net/http"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// §1 of the contract: ThingSpace OAuth2 client-credentials token and revoke.

const (
	tsTokenPath  = "/api/ts/v1/oauth2/token"
	tsRevokePath = "/api/ts/v1/oauth2/revoke"

	// RevokedTokenHeader carries the revoked token on a successful revoke.
	// Verizon documents "the revoked token in the header" without a name; this
	// is the header the WSO2 gateway that ThingSpace's fault codes come from
	// uses. Clients must not depend on it (the contract says ignore headers).
	RevokedTokenHeader = "RevokedAccessToken"

	// defaultScope is what a client-credentials token carries when none is
	// asked for; [seen] real responses always include some scope.
	defaultScope = "default"
)

type tsToken struct {
	value   string
	appKey  string
	scope   string
	expires time.Time
}

// tsOAuth holds §1 state: apps and at most one live token per app key.
type tsOAuth struct {
	clock    clock.PassiveClock
	lifetime time.Duration

	mu sync.Mutex
	// grace keeps a token live this long past its expiry, answered with
	// expires_in 0 (see Config.ExpiryGrace).
	grace   time.Duration
	apps    map[string]string   // app key -> secret
	byApp   map[string]*tsToken // app key -> live token
	byValue map[string]*tsToken // token value -> live token
}

func newTSOAuth(clk clock.PassiveClock, lifetime, grace time.Duration, apps map[string]string) *tsOAuth {
	t := &tsOAuth{
		clock:    clk,
		lifetime: lifetime,
		grace:    max(grace, 0),
		apps:     make(map[string]string, len(apps)),
		byApp:    map[string]*tsToken{},
		byValue:  map[string]*tsToken{},
	}
	for k, v := range apps {
		t.apps[k] = v
	}
	return t
}

func (t *tsOAuth) register(mux *http.ServeMux) {
	mux.HandleFunc("POST "+tsTokenPath, t.handleToken)
	mux.HandleFunc("POST "+tsRevokePath, t.handleRevoke)
}

// authenticate writes the contract's error and returns false unless the
// request carries valid Basic credentials of a known app.
func (t *tsOAuth) authenticate(w http.ResponseWriter, r *http.Request) (appKey string, ok bool) {
	key, secret, present, decoded := basicAuth(r)
	if !present {
		writeGatewayFault(w, http.StatusUnauthorized, "900902", "Missing Credentials",
			"Required OAuth credentials not provided. Make sure your API invocation call has a header: 'Authorization: Basic base64(key:secret)'")
		return "", false
	}
	if !decoded || !t.checkSecret(key, secret) {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client",
			"Client Authentication failed.")
		return "", false
	}
	return key, true
}

func (t *tsOAuth) checkSecret(key, secret string) bool {
	t.mu.Lock()
	want, known := t.apps[key]
	t.mu.Unlock()
	// Constant-time so the simulator does not model a timing oracle that
	// tests could come to rely on.
	return known && subtle.ConstantTimeCompare([]byte(secret), []byte(want)) == 1
}

// handleToken: credentials are checked before the form, so a request that is
// wrong on both counts gets 401, not 400.
func (t *tsOAuth) handleToken(w http.ResponseWriter, r *http.Request) {
	key, ok := t.authenticate(w, r)
	if !ok {
		return
	}
	if err := parseForm(w, r); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Malformed request body.")
		return
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "client_credentials":
	case "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing grant_type parameter value.")
		return
	default:
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Unsupported grant_type value.")
		return
	}

	tok, left := t.issue(key, r.PostForm.Get("scope"))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
		Scope       string `json:"scope"`
	}{tok.value, "Bearer", int64(left / time.Second), tok.scope})
}

// issue returns the app's live token, minting one only if there is none
// ([doc]: the same token for the whole hour, shared by every client of the
// key). left is the remaining lifetime; callers round it down to seconds.
// scope only applies to a newly minted token: the contract says a repeat
// request gets the same token, so it cannot take on a different scope.
func (t *tsOAuth) issue(appKey, scope string) (tok *tsToken, left time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	if tok = t.liveLocked(appKey, now); tok != nil {
		// In the grace period past expiry the same token comes back with
		// expires_in 0: "expired now" (issue 8 scenario 12).
		return tok, max(tok.expires.Sub(now), 0)
	}
	value := newTokenValue()
	if scope == "" {
		scope = defaultScope
	}
	tok = &tsToken{value: value, appKey: appKey, scope: scope, expires: now.Add(t.lifetime)}
	t.byApp[appKey] = tok
	t.byValue[value] = tok
	return tok, t.lifetime
}

// liveLocked returns the app's token if it has not expired, dropping it if it
// has. Expiry is lazy: nothing needs to run at the moment a token dies.
func (t *tsOAuth) liveLocked(appKey string, now time.Time) *tsToken {
	tok := t.byApp[appKey]
	if tok == nil {
		return nil
	}
	if t.deadLocked(tok, now) {
		t.dropLocked(tok)
		return nil
	}
	return tok
}

// deadLocked reports whether tok has expired at now, grace included.
func (t *tsOAuth) deadLocked(tok *tsToken, now time.Time) bool {
	return !now.Before(tok.expires.Add(t.grace))
}

func (t *tsOAuth) setGrace(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.grace = max(d, 0)
}

func (t *tsOAuth) dropLocked(tok *tsToken) {
	if t.byApp[tok.appKey] == tok {
		delete(t.byApp, tok.appKey)
	}
	delete(t.byValue, tok.value)
}

// handleRevoke: [doc] 2xx with the revoked token in a header and no body.
// Like RFC 7009 and WSO2, an unknown, stale or foreign token still gets 200
// but revokes nothing, and then no header is sent. grant_type is not checked:
// the contract shows it but documents no error for it.
func (t *tsOAuth) handleRevoke(w http.ResponseWriter, r *http.Request) {
	key, ok := t.authenticate(w, r)
	if !ok {
		return
	}
	if err := parseForm(w, r); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Malformed request body.")
		return
	}
	value := r.PostForm.Get("token")
	if value == "" {
		// RFC 7009 makes token required; the contract is silent.
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing token parameter value.")
		return
	}
	if t.revoke(key, value) {
		w.Header().Set(RevokedTokenHeader, value)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
}

// revoke ends value if it is appKey's live token; another app's token is left
// alone, as one app must not be able to knock out another.
func (t *tsOAuth) revoke(appKey, value string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	tok := t.byValue[value]
	if tok == nil || tok.appKey != appKey {
		return false
	}
	if t.deadLocked(tok, t.clock.Now()) {
		t.dropLocked(tok)
		return false // already dead: nothing was revoked
	}
	t.dropLocked(tok)
	return true
}

func (t *tsOAuth) valid(value string) bool {
	if value == "" {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tok := t.byValue[value]
	if tok == nil {
		return false
	}
	if t.deadLocked(tok, t.clock.Now()) {
		t.dropLocked(tok)
		return false
	}
	return true
}

func (t *tsOAuth) setApp(key, secret string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.apps[key]; ok && old != secret {
		if tok := t.byApp[key]; tok != nil {
			t.dropLocked(tok)
		}
	}
	t.apps[key] = secret
}

func (t *tsOAuth) removeApp(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.apps, key)
	if tok := t.byApp[key]; tok != nil {
		t.dropLocked(tok)
	}
}

func (t *tsOAuth) hasApp(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.apps[key]
	return ok
}

// newTokenValue returns a random UUIDv4 string: unguessable (122 random bits
// from crypto/rand) and shaped like the gateway's opaque tokens. Since Go 1.24
// crypto/rand.Read never returns an error (it aborts instead).
func newTokenValue() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
