package simulator

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// §3 account resource, grant state, the Server's Cloud switches and admin API.

// handleAccount answers GET /cloud/1/account for a live access token.
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
