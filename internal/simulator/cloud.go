package simulator

import (
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
