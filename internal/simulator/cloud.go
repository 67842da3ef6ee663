package simulator

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// §3 of the contract: Verizon Personal Cloud Storage OAuth2, the
// authorization-code grant with rotating refresh tokens, plus one resource
// call to tell a live access token from a dead one.
//
// The model: a person's consent at authorize creates a grant (client id,
// device id). The grant's single-use code is exchanged once for an access
// token and a refresh token; every refresh rotates the refresh token and adds
// an access token to the same grant. Revocation (the person removing the app)
// ends the grant and with it every code and token it holds.

const (
	cloudAuthorizePath = "/cloud/1/oauth2/authorize"
	cloudTokenPath     = "/cloud/1/oauth2/token"
	cloudAccountPath   = "/cloud/1/account"

	// DefaultCloudAccessTokenLifetime is the access token lifetime when none is
	// configured. The real one is unknown (the contract's example says
	// expires_in 3600); clients must read expires_in.
	DefaultCloudAccessTokenLifetime = time.Hour
	// DefaultCloudRefreshTokenLifetime is the documented 14 days, counted from
	// the refresh token's own issue.
	DefaultCloudRefreshTokenLifetime = 14 * 24 * time.Hour
	// DefaultCloudCodeLifetime: undocumented; RFC 6749 §4.1.2 recommends at
	// most 10 minutes.
	DefaultCloudCodeLifetime = 5 * time.Minute

	// cloudTombstoneTTL is how long a used code or rotated refresh token is
	// remembered past its own expiry, so that presenting it again is counted
	// as a reuse rather than an unknown value; cloudSweepEvery is how often (on
	// the server clock) issuing sweeps what is older.
	cloudTombstoneTTL = time.Hour
	cloudSweepEvery   = time.Minute
)

// CloudApp is a Verizon Cloud client registered in Key Management: the client
// id is its key.
type CloudApp struct {
	// Secret is the client secret.
	Secret string `json:"secret"`
	// CallbackURL is the registered redirect_uri; authorize requires an exact,
	// case-sensitive match.
	CallbackURL string `json:"callbackURL"`
}

// ValidateCloudApp reports why key and app could not be registered: the key
// must be non-empty without ':' (Basic auth splits at the first colon), the
// secret non-empty, and the callback an absolute URL without a fragment
// (RFC 6749 §3.1.2). Errors never quote the secret.
func ValidateCloudApp(key string, app CloudApp) error {
	var errs []error
	if key == "" || strings.Contains(key, ":") {
		errs = append(errs, errors.New("client id must be non-empty and must not contain ':'"))
	}
	if app.Secret == "" {
		errs = append(errs, errors.New("secret must not be empty"))
	}
	if u, err := url.Parse(app.CallbackURL); err != nil || !u.IsAbs() || strings.Contains(app.CallbackURL, "#") {
		errs = append(errs, fmt.Errorf("callback URL %q must be an absolute URL without a fragment", app.CallbackURL))
	}
	return errors.Join(errs...)
}

// CloudStats counts Verizon Cloud OAuth events. Every field but
// LiveRefreshTokens counts events since start or the last ResetStats;
// LiveRefreshTokens is current state and survives a reset.
type CloudStats struct {
	// CodesIssued counts authorize requests that redirected with a code.
	CodesIssued int `json:"codesIssued"`
	// Denials counts authorize requests refused by the deny-consent switch.
	Denials int `json:"denials"`
	// CodeExchanges counts successful authorization_code grants.
	CodeExchanges int `json:"codeExchanges"`
	// CodeReuses counts exchanges of a code that had already been exchanged.
	CodeReuses int `json:"codeReuses"`
	// Refreshes counts successful refresh_token grants (rotations).
	Refreshes int `json:"refreshes"`
	// RefreshTokenReuses counts refresh_token grants presenting a refresh
	// token that had already been rotated: a client that lost or raced its
	// newest refresh token.
	RefreshTokenReuses int `json:"refreshTokenReuses"`
	// InvalidGrants counts every 401 invalid_grant answer, reuses included.
	InvalidGrants int `json:"invalidGrants"`
	// LiveRefreshTokens is how many refresh tokens would be accepted now.
	LiveRefreshTokens int `json:"liveRefreshTokens"`
}

// cloudGrant is one consent: what revocation ends.
type cloudGrant struct {
	clientID, deviceID string
	revoked            bool
}

type cloudCode struct {
	grant       *cloudGrant
	redirectURI string
	expires     time.Time
	used        bool
}

type cloudRefresh struct {
	grant   *cloudGrant
	expires time.Time
	rotated bool
}

type cloudAccess struct {
	grant   *cloudGrant
	expires time.Time
}

// cloudTokens is a token response.
type cloudTokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
	TokenType    string `json:"token_type"`
}

// cloud holds §3 state.
type cloud struct {
	clock                                         clock.PassiveClock
	accessLifetime, refreshLifetime, codeLifetime time.Duration
	// respondLate is Server.respondLate: run a handler, hold its answer.
	respondLate func(http.ResponseWriter, *http.Request, time.Duration, http.HandlerFunc)

	mu          sync.Mutex
	apps        map[string]CloudApp
	denyConsent bool
	tokenDelay  time.Duration
	codes       map[string]*cloudCode
	refresh     map[string]*cloudRefresh
	access      map[string]*cloudAccess
	counts      CloudStats // LiveRefreshTokens unused: computed on demand
	lastSweep   time.Time
	quirks      cloudQuirks
}

func newCloud(clk clock.PassiveClock, respondLate func(http.ResponseWriter, *http.Request, time.Duration, http.HandlerFunc), cfg Config) *cloud {
	c := &cloud{
		clock:           clk,
		accessLifetime:  positiveOr(cfg.CloudAccessTokenLifetime, DefaultCloudAccessTokenLifetime),
		refreshLifetime: positiveOr(cfg.CloudRefreshTokenLifetime, DefaultCloudRefreshTokenLifetime),
		codeLifetime:    positiveOr(cfg.CloudCodeLifetime, DefaultCloudCodeLifetime),
		respondLate:     respondLate,
		apps:            make(map[string]CloudApp, len(cfg.CloudApps)),
		denyConsent:     cfg.CloudDenyConsent,
		tokenDelay:      max(cfg.CloudTokenResponseDelay, 0),
		codes:           map[string]*cloudCode{},
		refresh:         map[string]*cloudRefresh{},
		access:          map[string]*cloudAccess{},
	}
	for k, v := range cfg.CloudApps {
		c.apps[k] = v
	}
	return c
}

func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (c *cloud) register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+cloudAuthorizePath, c.handleAuthorize)
	mux.HandleFunc("POST "+cloudTokenPath, c.handleToken)
	mux.HandleFunc("GET "+cloudAccountPath, c.handleAccount)
}

// --- authorize ---

// handleAuthorize stands in for the person as well as the server: instead of
// a login page it consents at once (or refuses, with denyConsent). Checks run
// in this order: parameters present and well-formed (400), client id known
// (401), redirect_uri registered (400). Until redirect_uri is known to be the
// registered one, errors are answered here and never redirected (RFC 6749
// §4.1.2.1), so an attacker cannot use the simulator as an open redirector.
func (c *cloud) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for _, p := range []string{"client_id", "redirect_uri", "response_type", "state", "deviceid"} {
		if len(q[p]) > 1 { // RFC 6749 §3.1: parameters must not repeat
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Parameter "+p+" is repeated.")
			return
		}
	}
	clientID, redirectURI := q.Get("client_id"), q.Get("redirect_uri")
	switch rt := q.Get("response_type"); {
	case clientID == "" || redirectURI == "" || rt == "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "client_id, redirect_uri and response_type are required.")
		return
	case rt != "code":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "response_type must be code.")
		return
	}

	switch app, known := c.app(clientID); {
	case !known:
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client_id is not valid.")
		return
	case redirectURI != app.CallbackURL:
		// [doc] exact and case-sensitive: no normalisation of any kind.
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri does not match the registered Callback URL.")
		return
	}

	params := url.Values{}
	if code, ok := c.consent(clientID, q.Get("deviceid"), redirectURI); ok {
		params.Set("code", code)
	} else {
		params.Set("error", "access_denied")
		params.Set("error_description", "The user denied access to the application.")
	}
	if q.Has("state") {
		params.Set("state", q.Get("state")) // untouched, even when empty
	}
	// The code travels in the URL: keep it out of caches.
	noStore(w)
	w.Header().Set("Location", withQuery(redirectURI, params))
	w.WriteHeader(http.StatusFound)
}

// consent is the person's answer: a new grant and its code, or a refusal
// when the deny-consent switch is on.
func (c *cloud) consent(clientID, deviceID, redirectURI string) (code string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.denyConsent {
		c.counts.Denials++
		return "", false
	}
	now := c.clock.Now()
	c.sweepLocked(now)
	code = newTokenValue()
	c.codes[code] = &cloudCode{
		grant:       &cloudGrant{clientID: clientID, deviceID: deviceID},
		redirectURI: redirectURI,
		expires:     now.Add(c.codeLifetime),
	}
	c.counts.CodesIssued++
	return code, true
}

// withQuery appends params to a registered callback URL, keeping its own
// query (RFC 6749 §3.1.2: the endpoint URI's query must be retained).
func withQuery(base string, params url.Values) string {
	sep := "?"
	switch {
	case strings.HasSuffix(base, "?") || strings.HasSuffix(base, "&"):
		sep = ""
	case strings.Contains(base, "?"):
		sep = "&"
	}
	return base + sep + params.Encode()
}

// noStore marks a response that carries a code or token as uncacheable
// (RFC 6749 §5.1).
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// --- token ---

// handleToken holds its answer back when the token-delay switch is on: the
// grant is processed (and a refresh token rotated) first, so a client that
// gives up during the delay has lost the only copy of its new refresh token.
func (c *cloud) handleToken(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	d := c.tokenDelay
	c.mu.Unlock()
	if d > 0 {
		c.respondLate(w, r, d, c.token)
		return
	}
	c.token(w, r)
}

// token: the form is parsed before the client is authenticated because the
// credentials may be in it.
func (c *cloud) token(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Malformed request body.")
		return
	}
	clientID, ok := c.authenticate(w, r)
	if !ok || c.injectedFailure(w) {
		return
	}
	form := r.PostForm
	var (
		tokens cloudTokens
		failed string // invalid_grant description
	)
	switch form.Get("grant_type") {
	case "authorization_code":
		code, redirectURI := form.Get("code"), form.Get("redirect_uri")
		if code == "" || redirectURI == "" {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "code and redirect_uri are required.")
			return
		}
		tokens, failed = c.redeemCode(clientID, code, redirectURI)
	case "refresh_token":
		rt := form.Get("refresh_token")
		if rt == "" {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "refresh_token is required.")
			return
		}
		tokens, failed = c.rotate(clientID, rt)
	case "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required.")
		return
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token.")
		return
	}
	if failed != "" {
		// [doc] 401, not RFC 6749's 400: the user must authorize again.
		writeOAuthError(w, http.StatusUnauthorized, "invalid_grant", failed)
		return
	}
	c.writeTokens(w, tokens)
}

// authenticate accepts Basic client credentials or client_id and
// client_secret in the form, but not both at once (RFC 6749 §2.3: one method
// per request). It writes the error and returns false when they fail.
func (c *cloud) authenticate(w http.ResponseWriter, r *http.Request) (clientID string, ok bool) {
	user, pass, basic, decoded := basicAuth(r)
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if basic {
		if r.PostForm.Has("client_secret") {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Use one client authentication method, not two.")
			return "", false
		}
		if !decoded || (id != "" && id != user) {
			user = "" // undecodable, or a form client_id naming another client: fails below
		}
		id, secret = user, pass
	}
	app, known := c.app(id)
	// Constant-time, as for ThingSpace apps; an empty secret never matches.
	if !known || secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(app.Secret)) != 1 {
		if basic {
			// RFC 6749 §5.2: a 401 to a client that tried Basic names the scheme.
			w.Header().Set("WWW-Authenticate", `Basic realm="Verizon Cloud"`)
		}
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed.")
		return "", false
	}
	return id, true
}

func (c *cloud) app(id string) (CloudApp, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	app, ok := c.apps[id]
	return app, ok
}

// grant runs one token grant under the lock. check returns the grant to
// issue new tokens to, having used up what was redeemed, or why not; a
// refusal is counted as an invalid grant.
func (c *cloud) grant(check func(now time.Time) (*cloudGrant, string)) (cloudTokens, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	g, failed := check(now)
	if failed != "" {
		c.counts.InvalidGrants++
		return cloudTokens{}, failed
	}
	return c.issueLocked(g, now), ""
}

// redeemCode exchanges a code for the grant's first tokens, or returns why
// not. A code presented by another client or with another redirect_uri is
// refused without being used up: the rightful client may still redeem it.
func (c *cloud) redeemCode(clientID, code, redirectURI string) (cloudTokens, string) {
	return c.grant(func(now time.Time) (*cloudGrant, string) {
		cd := c.codes[code]
		switch {
		case cd == nil:
			return nil, "The authorization code is not valid."
		case cd.grant.clientID != clientID:
			return nil, "The authorization code was issued to another client."
		case cd.used:
			c.counts.CodeReuses++
			return nil, "The authorization code has already been used."
		case cd.grant.revoked:
			return nil, "The authorization has been revoked."
		case !now.Before(cd.expires):
			return nil, "The authorization code has expired."
		case cd.redirectURI != redirectURI:
			return nil, "redirect_uri does not match the one used to obtain the code."
		}
		cd.used = true
		c.counts.CodeExchanges++
		return cd.grant, ""
	})
}

// rotate trades a live refresh token for new tokens and retires it.
func (c *cloud) rotate(clientID, token string) (cloudTokens, string) {
	return c.grant(func(now time.Time) (*cloudGrant, string) {
		rt := c.refresh[token]
		switch {
		case rt == nil:
			return nil, "The refresh token is not valid."
		case rt.grant.clientID != clientID:
			return nil, "The refresh token was issued to another client."
		case rt.rotated:
			// Checked before revocation and expiry: a client presenting a
			// superseded token has a bug whatever else happened since.
			c.counts.RefreshTokenReuses++
			return nil, "The refresh token has already been used."
		case rt.grant.revoked:
			return nil, "The refresh token has been revoked."
		case !now.Before(rt.expires):
			return nil, "The refresh token has expired."
		}
		// [doc] the old refresh token stops working; access tokens already
		// issued live out their own lifetime.
		rt.rotated = true
		c.counts.Refreshes++
		return rt.grant, ""
	})
}

func (c *cloud) issueLocked(g *cloudGrant, now time.Time) cloudTokens {
	c.sweepLocked(now)
	t := cloudTokens{
		AccessToken:  newTokenValue(),
		RefreshToken: newTokenValue(),
		ExpiresIn:    int64(c.accessLifetime / time.Second),
		TokenType:    "Bearer",
	}
	c.access[t.AccessToken] = &cloudAccess{grant: g, expires: now.Add(c.accessLifetime)}
	c.refresh[t.RefreshToken] = &cloudRefresh{grant: g, expires: now.Add(c.refreshLifetime)}
	return t
}

// sweepLocked forgets dead access tokens, and codes and refresh tokens whose
// tombstone time is over, at most once per cloudSweepEvery, so the maps stay
// bounded by what was issued recently.
func (c *cloud) sweepLocked(now time.Time) {
	if now.Sub(c.lastSweep) < cloudSweepEvery {
		return
	}
	c.lastSweep = now
	for v, a := range c.access {
		if !now.Before(a.expires) {
			delete(c.access, v)
		}
	}
	for v, cd := range c.codes {
		if !now.Before(cd.expires.Add(cloudTombstoneTTL)) {
			delete(c.codes, v)
		}
	}
	for v, rt := range c.refresh {
		if !now.Before(rt.expires.Add(cloudTombstoneTTL)) {
			delete(c.refresh, v)
		}
	}
}

// --- resource ---

func (c *cloud) handleAccount(w http.ResponseWriter, r *http.Request) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	var g *cloudGrant
	if strings.EqualFold(scheme, "Bearer") {
		g = c.liveAccess(strings.TrimSpace(token))
	}
	if g == nil {
		// RFC 6750 §3: a 401 to a resource request names the scheme.
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_token", "The access token is missing, invalid, expired or revoked.")
		return
	}
	writeJSON(w, http.StatusOK, struct {
		ClientID string `json:"clientId"`
		DeviceID string `json:"deviceId,omitempty"`
	}{g.clientID, g.deviceID})
}

// liveAccess returns the grant of a live access token, or nil.
func (c *cloud) liveAccess(token string) *cloudGrant {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.access[token]
	if a == nil || a.grant.revoked || !c.clock.Now().Before(a.expires) {
		return nil
	}
	return a.grant
}

// --- in-process and admin controls ---

func (c *cloud) setApp(key string, app CloudApp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apps[key] = app
}

// revoke ends every grant of clientID that still holds a live code or token
// and returns how many that was.
func (c *cloud) revoke(clientID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	ended := map[*cloudGrant]bool{}
	end := func(g *cloudGrant, live bool) {
		if live && g.clientID == clientID && !g.revoked {
			ended[g] = true
		}
	}
	for _, cd := range c.codes {
		end(cd.grant, !cd.used && now.Before(cd.expires))
	}
	for _, rt := range c.refresh {
		end(rt.grant, !rt.rotated && now.Before(rt.expires))
	}
	for _, a := range c.access {
		end(a.grant, now.Before(a.expires))
	}
	for g := range ended {
		g.revoked = true
	}
	return len(ended)
}

func (c *cloud) stats() CloudStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	st := c.counts
	st.LiveRefreshTokens = 0
	for _, rt := range c.refresh {
		if !rt.rotated && !rt.grant.revoked && now.Before(rt.expires) {
			st.LiveRefreshTokens++
		}
	}
	return st
}

func (c *cloud) resetCounts() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = CloudStats{}
}

// SetCloudApp registers a Verizon Cloud client or changes its secret and
// callback URL. Live grants are left alone: a new secret applies from the
// next token request, and codes keep the redirect_uri they were issued for.
// The values are not validated; see ValidateCloudApp.
func (s *Server) SetCloudApp(key, secret, callbackURL string) {
	s.cloud.setApp(key, CloudApp{Secret: secret, CallbackURL: callbackURL})
}

// SetCloudDenyConsent makes authorize refuse (redirect with
// error=access_denied) instead of consenting, as a person declining would.
func (s *Server) SetCloudDenyConsent(deny bool) {
	s.cloud.mu.Lock()
	defer s.cloud.mu.Unlock()
	s.cloud.denyConsent = deny
}

// SetCloudTokenResponseDelay holds every token response for d after the
// request has been fully processed; 0 (or less) turns it off.
func (s *Server) SetCloudTokenResponseDelay(d time.Duration) {
	s.cloud.mu.Lock()
	defer s.cloud.mu.Unlock()
	s.cloud.tokenDelay = max(d, 0)
}

// RevokeCloudGrants ends every grant of clientID, as the person removing the
// app in their account settings would: its codes, refresh tokens and access
// tokens all stop working. It returns how many grants still had a live code
// or token.
func (s *Server) RevokeCloudGrants(clientID string) int { return s.cloud.revoke(clientID) }

// ValidCloudAccessToken reports whether token is a Verizon Cloud access token
// that /cloud/1/account would accept: issued, unexpired, not revoked.
func (s *Server) ValidCloudAccessToken(token string) bool { return s.cloud.liveAccess(token) != nil }

// CloudStats returns the Verizon Cloud event counts and live refresh tokens.
func (s *Server) CloudStats() CloudStats { return s.cloud.stats() }

// registerCloudAdmin adds the /admin/cloud/* controls (see admin.go for the
// conventions: unauthenticated, never faulted or counted).
func (s *Server) registerCloudAdmin(mux *http.ServeMux) {
	mux.HandleFunc("PUT /admin/cloud/apps/{key}", func(w http.ResponseWriter, r *http.Request) {
		var app CloudApp
		if err := decodeAdminJSON(w, r, &app); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		key := r.PathValue("key")
		if err := ValidateCloudApp(key, app); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.SetCloudApp(key, app.Secret, app.CallbackURL)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /admin/cloud/apps/{key}/revoke", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if _, ok := s.cloud.app(key); !ok {
			adminError(w, http.StatusNotFound, "no such cloud app")
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"revoked": s.RevokeCloudGrants(key)})
	})
	mux.HandleFunc("PUT /admin/cloud/consent", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Deny bool `json:"deny"`
		}
		if err := decodeAdminJSON(w, r, &body); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.SetCloudDenyConsent(body.Deny)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /admin/cloud/token-delay", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Delay string `json:"delay"`
		}
		err := decodeAdminJSON(w, r, &body)
		var d time.Duration
		if err == nil {
			d, err = parseDuration("delay", body.Delay)
		}
		if err == nil && d < 0 {
			err = fmt.Errorf("delay %v is negative", d)
		}
		if err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.SetCloudTokenResponseDelay(d)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /admin/cloud/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.CloudStats())
	})
}
