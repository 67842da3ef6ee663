package cloudapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
	"github.com/credops/thingspace-operator/internal/upstream/oauth"
)

const (
	authorizePath = "/oauth2/authorize"
	tokenPath     = "/oauth2/token"
	accountPath   = "/account"

	formContentType = "application/x-www-form-urlencoded"
)

// AuthorizeURL returns the URL to send a person's browser to so they can sign in and grant the
// app access:
//
//	<base>/oauth2/authorize?client_id=…&redirect_uri=…&response_type=code&state=…[&deviceid=…]
//
// deviceid is added only when deviceID is non-empty. redirectURI must equal the Callback URL
// registered in Key Management exactly (case-sensitively), so it is sent verbatim, only
// query-escaped, never normalised. Verizon returns state untouched on the redirect: make it
// unguessable and check it there.
func (c *Client) AuthorizeURL(clientID, redirectURI, state, deviceID string) string {
	var q strings.Builder
	q.WriteString("client_id=" + url.QueryEscape(clientID))
	q.WriteString("&redirect_uri=" + url.QueryEscape(redirectURI))
	q.WriteString("&response_type=code")
	q.WriteString("&state=" + url.QueryEscape(state))
	if deviceID != "" {
		q.WriteString("&deviceid=" + url.QueryEscape(deviceID))
	}
	return c.eng.URL(authorizePath, q.String())
}

// Exchange trades an authorization code (from the redirect after consent) for tokens, with the
// app's credentials as HTTP Basic. redirectURI must be the one the authorization was started
// with. A code works once: after any answer, and after an Unanswered error, start a new
// authorization rather than sending it again.
//
// The response must carry an access token and a refresh token; without them it is malformed
// (Transient, with the 2xx status), and the code is spent. A missing lifetime is assumed, an
// absurd one capped (Tokens.LifetimeAssumed, LifetimeCapped). A malformed 2xx that still carries a
// usable refresh_token returns it in Tokens.RefreshToken alongside the error (and nothing else):
// store it, it is the grant. See the package documentation for the errors.
func (c *Client) Exchange(ctx context.Context, creds Credentials, code, redirectURI string) (Tokens, error) {
	if err := checkGrantArgs(EndpointCodeExchange, creds, "authorization code", code); err != nil {
		return Tokens{}, err
	}
	if redirectURI == "" {
		return Tokens{}, upstream.NewError(API, EndpointCodeExchange, 0, upstream.Invalid, "redirect URI is empty", nil)
	}
	form := "grant_type=authorization_code&code=" + url.QueryEscape(code) + "&redirect_uri=" + url.QueryEscape(redirectURI)
	return c.token(ctx, EndpointCodeExchange, creds, form, true)
}

// Refresh trades refreshToken for new tokens, with the app's credentials as HTTP Basic. Verizon
// rotates refresh tokens: the answer's RefreshToken replaces refreshToken, which stops working, so
// store it before using the new access token, and never run two refreshes of one token at once.
// A response without refresh_token leaves Tokens.RefreshToken empty: keep the old one.
//
// A response without a usable access_token is malformed (Transient, with the 2xx status):
// Verizon accepted the refresh, so the old refresh token has probably been rotated. When such a
// response carries a usable refresh_token, Tokens.RefreshToken holds it alongside the error (and
// nothing else): store it, the old one is spent (issue 8 scenario 7). A missing expires_in is
// not malformed: the lifetime is assumed (Tokens.LifetimeAssumed). See the package documentation
// for the errors, Unanswered and NeedsReauthorization above all.
func (c *Client) Refresh(ctx context.Context, creds Credentials, refreshToken string) (Tokens, error) {
	if err := checkGrantArgs(EndpointRefresh, creds, "refresh token", refreshToken); err != nil {
		return Tokens{}, err
	}
	return c.token(ctx, EndpointRefresh, creds, "grant_type=refresh_token&refresh_token="+url.QueryEscape(refreshToken), false)
}

// Account reads the account's information with accessToken as Bearer and throws it away: it
// proves the token works. Any 2xx is success. A 401 (Rejected) means the access token expired or
// was revoked: refresh, then retry once.
func (c *Client) Account(ctx context.Context, accessToken string) error {
	if err := oauth.CheckTokenArg(API, EndpointAccount, "access token", accessToken); err != nil {
		return err
	}
	_, err := c.eng.Do(ctx, upstream.Request{
		Endpoint: EndpointAccount,
		Method:   http.MethodGet,
		Path:     accountPath,
		Header:   http.Header{"Authorization": {"Bearer " + accessToken}},
		Classify: classify,
	})
	return err
}

// checkGrantArgs refuses, before anything is sent, credentials that cannot go into a Basic header
// and a code or refresh token that is empty or holds characters no token can.
func checkGrantArgs(endpoint string, creds Credentials, what, grant string) error {
	if err := creds.Validate(API, endpoint); err != nil {
		return err
	}
	return oauth.CheckGrantArg(API, endpoint, what, grant)
}

// token posts a grant (form, encoded in the documented order) to the token endpoint and parses
// the answer; without requireRefresh a missing refresh_token leaves Tokens.RefreshToken empty.
func (c *Client) token(ctx context.Context, endpoint string, creds Credentials, form string, requireRefresh bool) (Tokens, error) {
	resp, err := c.eng.Do(ctx, upstream.Request{
		Endpoint:    endpoint,
		Method:      http.MethodPost,
		Path:        tokenPath,
		Header:      http.Header{"Authorization": {creds.BasicAuth()}},
		ContentType: formContentType,
		Body:        []byte(form),
		ReadBody:    true,
		Classify:    classify,
	})
	if err != nil {
		return Tokens{}, err
	}
	var rt struct {
		RefreshToken *string `json:"refresh_token"`
	}
	rtErr := json.Unmarshal(resp.Body, &rt)
	tr, err := oauth.ParseTokenResponse(API, endpoint, resp)
	if err != nil {
		// Verizon accepted the grant: a usable refresh token in the answer is the only live one left.
		if rtErr == nil && rt.RefreshToken != nil && oauth.IsVSChars(*rt.RefreshToken) {
			return Tokens{RefreshToken: *rt.RefreshToken}, err
		}
		return Tokens{}, err
	}
	if rtErr != nil {
		return Tokens{}, upstream.Malformed(API, endpoint, resp.Status, "refresh_token is not a string", rtErr)
	}
	t := Tokens{AccessToken: tr.AccessToken, TokenType: tr.TokenType, ExpiresIn: tr.ExpiresIn,
		LifetimeAssumed: tr.LifetimeAssumed, LifetimeCapped: tr.LifetimeCapped}
	switch {
	case rt.RefreshToken != nil && *rt.RefreshToken != "":
		if !oauth.IsVSChars(*rt.RefreshToken) {
			return Tokens{}, upstream.Malformed(API, endpoint, resp.Status, "refresh_token unusable", nil)
		}
		t.RefreshToken = *rt.RefreshToken
	case requireRefresh:
		return Tokens{}, upstream.Malformed(API, endpoint, resp.Status, "refresh_token missing", nil)
	}
	return t, nil
}

// classify sorts every error response by the shared OAuth2 rules (oauth.Classify): Transient for
// 408, 429, 5xx, server_error and temporarily_unavailable; Rejected for 401, 403 and a 400 with
// invalid_grant, invalid_client or unauthorized_client; Invalid for other 400s, 404 and 405;
// Unknown otherwise. Error.Code carries the known OAuth2 code only.
func classify(status int, body []byte) (string, upstream.Kind) {
	code := oauth.ParseErrorCode(body)
	return code, oauth.Classify(status, code)
}

// tokenErrorOf returns the Rejected *upstream.Error in err's chain if it comes from this
// package's token endpoint.
func tokenErrorOf(err error) (*upstream.Error, bool) {
	e, ok := errors.AsType[*upstream.Error](err)
	if !ok || e.API != API || e.Kind != upstream.Rejected ||
		(e.Endpoint != EndpointCodeExchange && e.Endpoint != EndpointRefresh) {
		return nil, false
	}
	return e, true
}

// NeedsReauthorization reports whether the token endpoint refused the refresh token or the
// authorization code itself, not the app's credentials: a 400, 401 or 403 with invalid_grant, or
// a 401 without a known code. It expired (refresh tokens live 14 days), was revoked (the user
// removed the app) or was already used; the user must authorize again.
func NeedsReauthorization(err error) bool {
	e, ok := tokenErrorOf(err)
	if !ok {
		return false
	}
	switch e.StatusCode {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		if e.Code == "invalid_grant" {
			return true
		}
	}
	return e.StatusCode == http.StatusUnauthorized && e.Code == ""
}

// ClientRejected reports whether the token endpoint refused the app's client key or secret
// (invalid_client): retrying cannot help until they change; the refresh token was not looked at.
// Nothing else is this unambiguous (issue 8 scenario 10): unauthorized_client, a 403 without a
// code and other 4xx may be a gateway's or a policy's passing answer, and are retried with backoff.
func ClientRejected(err error) bool {
	e, ok := tokenErrorOf(err)
	return ok && e.Code == "invalid_client"
}

// RefreshTokenLifetime is how long Verizon keeps a refresh token that is not used: 14 days from its
// issue. A CloudAuthorization refreshes well before (spec.refreshTokenKeepAlive).
const RefreshTokenLifetime = 14 * 24 * time.Hour

// Unanswered reports whether a call of this package was written out in full to the connection
// and then got no complete answer (a timeout, a reset, the connection closed; see
// upstream.Error.Unanswered). Verizon may have acted on it: after an unanswered Refresh the
// refresh token may have rotated, and after an unanswered Exchange the code may be spent, so
// never send either again. A failure to connect or to write the request is not Unanswered.
func Unanswered(err error) bool {
	e, ok := errors.AsType[*upstream.Error](err)
	return ok && e.API == API && e.Unanswered
}
