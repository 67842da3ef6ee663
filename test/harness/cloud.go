package harness

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/credops/thingspace-operator/internal/simulator"
)

// Verizon Cloud on the simulator: its flags, admin controls, and the two calls a test makes as someone
// other than the operator: the person consenting at authorize, and a resource call with an access token.

// Verizon Cloud routes as the simulator counts them in its stats.
const (
	RouteCloudAuthorize = "GET /cloud/1/oauth2/authorize"
	RouteCloudToken     = "POST /cloud/1/oauth2/token"
	RouteCloudAccount   = "GET /cloud/1/account"
)

// CloudApp is a Verizon Cloud client: its secret and registered callback URL.
type CloudApp = simulator.CloudApp

// CloudStats are the simulator's Verizon Cloud event counts (zeroed by ResetStats) and its live refresh
// tokens (not zeroed). RefreshTokenReuses counts refreshes with an already rotated refresh token: an
// operator that loses or races its newest refresh token.
type CloudStats = simulator.CloudStats

// cloudArgs renders the Cloud fields as thingspace-sim flags, apps in client id order.
func (c SimConfig) cloudArgs() []string {
	var args []string
	for _, id := range slices.Sorted(maps.Keys(c.CloudApps)) {
		app := c.CloudApps[id]
		args = append(args, "--cloud-app", id+":"+app.Secret+":"+app.CallbackURL)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--cloud-access-token-lifetime", c.CloudAccessTokenLifetime},
		{"--cloud-refresh-token-lifetime", c.CloudRefreshTokenLifetime},
		{"--cloud-code-lifetime", c.CloudCodeLifetime},
		{"--cloud-token-delay", c.CloudTokenDelay},
	} {
		if d.v != 0 {
			args = append(args, d.flag, d.v.String())
		}
	}
	if c.CloudDenyConsent {
		args = append(args, "--cloud-deny-consent")
	}
	if c.Ledger {
		args = append(args, "--ledger")
	}
	return args
}

// SetCloudApp registers a Verizon Cloud client or changes its secret and callback URL (live grants
// stay).
func (s *Sim) SetCloudApp(clientID, secret, callbackURL string) error {
	return s.admin(http.MethodPut, "/admin/cloud/apps/"+url.PathEscape(clientID),
		CloudApp{Secret: secret, CallbackURL: callbackURL}, http.StatusNoContent, nil)
}

// SetCloudDenyConsent makes authorize refuse (error=access_denied) or consent again.
func (s *Sim) SetCloudDenyConsent(deny bool) error {
	return s.admin(http.MethodPut, "/admin/cloud/consent", map[string]bool{"deny": deny}, http.StatusNoContent, nil)
}

// SetCloudTokenDelay holds every Cloud token response for d after the simulator has processed it (a
// refresh has rotated by then); 0 turns it off.
func (s *Sim) SetCloudTokenDelay(d time.Duration) error {
	return s.admin(http.MethodPut, "/admin/cloud/token-delay", map[string]string{"delay": d.String()}, http.StatusNoContent, nil)
}

// RevokeCloudGrants ends every grant of clientID, as the person removing the app in their account
// settings would, and returns how many still had a live code or token.
func (s *Sim) RevokeCloudGrants(clientID string) (int, error) {
	var out struct {
		Revoked int `json:"revoked"`
	}
	err := s.admin(http.MethodPost, "/admin/cloud/apps/"+url.PathEscape(clientID)+"/revoke", nil, http.StatusOK, &out)
	return out.Revoked, err
}

// CloudStats returns the simulator's Verizon Cloud event counts and live refresh tokens.
func (s *Sim) CloudStats() (CloudStats, error) {
	var st CloudStats
	err := s.admin(http.MethodGet, "/admin/cloud/stats", nil, http.StatusOK, &st)
	return st, err
}

// CloudAccountOK calls GET /cloud/1/account with accessToken as a Bearer, as a workload using the
// operator's token would (the request is counted in Stats): true on 200, false on 401, an error on
// anything else.
func (s *Sim) CloudAccountOK(ctx context.Context, accessToken string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/cloud/1/account", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := s.http.Do(req)
	if err != nil {
		return false, errors.New("GET /cloud/1/account: request failed") // never the token
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusUnauthorized:
		return false, nil
	default:
		return false, fmt.Errorf("GET /cloud/1/account: status %d", resp.StatusCode)
	}
}

// CloudAuthorizeURL is the simulator's authorize URL for a client; empty state and deviceID are left
// out.
func (s *Sim) CloudAuthorizeURL(clientID, redirectURI, state, deviceID string) string {
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}}
	if state != "" {
		q.Set("state", state)
	}
	if deviceID != "" {
		q.Set("deviceid", deviceID)
	}
	return s.URL + "/cloud/1/oauth2/authorize?" + q.Encode()
}

// CloudAuthorize plays the person's browser: it opens authorizeURL (one the operator handed out, or
// CloudAuthorizeURL's) without following the redirect and returns where the simulator sends the browser:
// the callback with code and state, or with error=access_denied when consent is denied. The request is
// counted in Stats. Any answer but a 302 is an error naming the status.
func (s *Sim) CloudAuthorize(ctx context.Context, authorizeURL string) (*url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authorizeURL, nil)
	if err != nil {
		return nil, err
	}
	browser := *s.http
	browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := browser.Do(req)
	if err != nil {
		return nil, errors.New("authorize: request failed")
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("authorize: status %d", resp.StatusCode)
	}
	// The Location holds a code: say where it failed, not what it was.
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return nil, errors.New("authorize: unparsable Location")
	}
	return loc, nil
}
