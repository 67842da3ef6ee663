package thingspace

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
)

// §1 of the contract: OAuth2 client credentials against the ThingSpace gateway.

const (
	tokenPath  = "/api/ts/v1/oauth2/token"
	revokePath = "/api/ts/v1/oauth2/revoke"

	// EndpointToken and EndpointRevoke are the endpoint names given to the Observer and
	// upstream.Error.Endpoint.
	EndpointToken  = "token"
	EndpointRevoke = "revoke"

	formContentType = "application/x-www-form-urlencoded"
)

// maxExpiresInSeconds rejects absurd lifetimes (the documented one is an hour) before they
// become a time.Duration; renewal policy beyond that is the controller's.
const maxExpiresInSeconds = math.MaxInt32

// Credentials are a ThingSpace app key and secret. Every way of printing them (fmt verbs,
// JSON, slog, logr) redacts Secret; only the Authorization header of a request carries it.
type Credentials struct {
	Key, Secret string
}

// Token is an issued ThingSpace access token. Every way of printing it redacts AccessToken.
type Token struct {
	AccessToken string
	// TokenType is "Bearer" unless the upstream says otherwise.
	TokenType string
	// Scope is as granted by the upstream; empty when the response has none.
	Scope string
	// ExpiresIn is the remaining lifetime at the time of the response. The gateway returns the
	// same token for an hour, so a repeated request counts down: never assume an hour. Compute
	// expiry from a time taken BEFORE the request: that errs on the early side.
	ExpiresIn time.Duration
}

// Token requests an access token with the client-credentials grant; scope is sent only when
// non-empty. Repeated calls within the token's hour return the same token with a smaller
// ExpiresIn.
//
// Errors are *upstream.Error: Rejected for bad credentials (401, 403, 400 invalid_client /
// unauthorized_client / invalid_grant), Invalid for a bad request (other 400s, 404, or
// credentials that cannot be encoded; the latter is refused without a request), Transient for
// network failures, timeouts, 408, 429, 5xx and a malformed 2xx body.
func (c *Client) Token(ctx context.Context, creds Credentials, scope string) (Token, error) {
	if err := creds.validate(EndpointToken); err != nil {
		return Token{}, err
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	resp, err := c.do(ctx, call{
		endpoint:    EndpointToken,
		method:      http.MethodPost,
		path:        tokenPath,
		header:      http.Header{"Authorization": {creds.basic()}},
		contentType: formContentType,
		body:        []byte(form.Encode()),
		readBody:    true,
		classify:    classifyOAuth,
	})
	if err != nil {
		return Token{}, err
	}
	return parseToken(resp)
}

// Revoke revokes token, which ends it for EVERY client of the app key (they all share it), and
// makes the next Token call return a new token. Any 2xx is success; the response's headers and
// body are undocumented and ignored. Errors are classified as for Token.
func (c *Client) Revoke(ctx context.Context, creds Credentials, token string) error {
	if err := creds.validate(EndpointRevoke); err != nil {
		return err
	}
	if token == "" {
		return upstream.NewError(API, EndpointRevoke, 0, upstream.Invalid, "token to revoke is empty", nil)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "token": {token}}
	_, err := c.do(ctx, call{
		endpoint:    EndpointRevoke,
		method:      http.MethodPost,
		path:        revokePath,
		header:      http.Header{"Authorization": {creds.basic()}},
		contentType: formContentType,
		body:        []byte(form.Encode()),
		classify:    classifyOAuth,
	})
	return err
}

// classifyOAuth sorts the error responses of the token and revoke endpoints. Any 401 or 403 here
// is about the Basic credentials (gateway faults 900901/900902 included), since these
// endpoints take no Bearer token.
func classifyOAuth(status int, eb errorBody) upstream.Kind {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
		return upstream.Transient
	case eb.oauth == "server_error", eb.oauth == "temporarily_unavailable":
		return upstream.Transient
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return upstream.Rejected
	case status == http.StatusBadRequest:
		switch {
		case eb.oauth == "invalid_client", eb.oauth == "unauthorized_client", eb.oauth == "invalid_grant",
			eb.fault == "900901", eb.fault == "900902":
			return upstream.Rejected
		}
		return upstream.Invalid // invalid_request, invalid_scope, unsupported_grant_type, no code
	case status == http.StatusNotFound, status == http.StatusMethodNotAllowed:
		return upstream.Invalid // wrong base URL or path prefix: retrying cannot help
	default:
		return upstream.Unknown // 3xx (redirects are not followed) and other 4xx
	}
}

// tokenResponse is the 200 body. expires_in stays raw to check its type by hand.
type tokenResponse struct {
	AccessToken string          `json:"access_token"`
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
	Scope       string          `json:"scope"`
}

func parseToken(resp response) (Token, error) {
	var tr tokenResponse
	if err := json.Unmarshal(resp.body, &tr); err != nil {
		return Token{}, malformed(EndpointToken, resp.status, "not a token object", err)
	}
	if !isTokenValue(tr.AccessToken) {
		return Token{}, malformed(EndpointToken, resp.status, "access_token missing or unusable", nil)
	}
	secs, ok := parseExpiresIn(tr.ExpiresIn)
	if !ok {
		return Token{}, malformed(EndpointToken, resp.status, "expires_in missing or not a positive integer", nil)
	}
	t := Token{
		AccessToken: tr.AccessToken,
		TokenType:   tr.TokenType,
		Scope:       tr.Scope,
		ExpiresIn:   time.Duration(secs) * time.Second,
	}
	if t.TokenType == "" {
		t.TokenType = "Bearer"
	}
	return t, nil
}

// isTokenValue reports whether s can go into an Authorization header as is: non-empty printable
// ASCII without spaces. Anything else would break, or inject into, the header it is sent in.
func isTokenValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// parseExpiresIn accepts a positive integer: a JSON number (documented), or, tolerated, an
// integral float ("3600.0") or a quoted integer ("3600") as some gateways send.
func parseExpiresIn(raw json.RawMessage) (int64, bool) {
	s := strings.TrimSpace(string(raw))
	if len(s) >= 2 && s[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != math.Trunc(f) || f < 1 || f > maxExpiresInSeconds {
			return 0, false
		}
		n = int64(f)
	}
	if n < 1 || n > maxExpiresInSeconds {
		return 0, false
	}
	return n, true
}

// validate refuses credentials that cannot be sent as HTTP Basic: an empty part, a colon in the
// key (RFC 7617: it would split differently on the server), control characters.
func (c Credentials) validate(endpoint string) error {
	var reason string
	switch {
	case c.Key == "":
		reason = "credentials: key is empty"
	case c.Secret == "":
		reason = "credentials: secret is empty"
	case strings.Contains(c.Key, ":"):
		reason = "credentials: key contains a colon"
	case hasControl(c.Key) || hasControl(c.Secret):
		reason = "credentials: key or secret contains control characters"
	default:
		return nil
	}
	return upstream.NewError(API, endpoint, 0, upstream.Invalid, reason, nil)
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// basic is the Authorization header value: base64(key:secret), as the contract documents
// (no form-encoding of the parts).
func (c Credentials) basic() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.Key+":"+c.Secret))
}
