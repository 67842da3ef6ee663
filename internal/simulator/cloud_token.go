package simulator

import (
	"crypto/subtle"
	"net/http"
	"time"
)

// §3 token endpoint: the authorization-code and refresh-token grants.

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
