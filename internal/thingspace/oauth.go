package thingspace

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
	"github.com/credops/thingspace-operator/internal/upstream/oauth"
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

// Credentials are a ThingSpace app key and secret. Every way of printing them (fmt verbs,
// JSON, slog, logr) redacts Secret; only the Authorization header of a request carries it.
type Credentials = oauth.Credentials[credentialsName]

// credentialsName makes %#v of Credentials read "thingspace.Credentials{...}".
type credentialsName struct{}

func (credentialsName) GoName() string { return "thingspace.Credentials" }

// Token is an issued ThingSpace access token. Every way of printing it redacts AccessToken.
type Token struct {
	AccessToken string
	// TokenType is "Bearer" unless the upstream says otherwise.
	TokenType string
	// Scope is as granted by the upstream; empty when the response has none.
	Scope string
	// ExpiresIn is the remaining lifetime at the time of the response. The gateway returns the
	// same token for an hour, so a repeated request counts down: never assume an hour. Expiry is
	// the receive time plus ExpiresIn, or the send time for a slow answer (renewal.Anchor). 0 means the
	// token expires now (the gateway's answer in its last second): ask again shortly.
	ExpiresIn time.Duration
	// LifetimeAssumed is set when the answer had no expires_in: ExpiresIn is
	// oauth.AssumedExpiresIn.
	LifetimeAssumed bool
	// LifetimeCapped is set when the answer's expires_in exceeded oauth.MaxExpiresIn.
	LifetimeCapped bool
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
	if err := creds.Validate(API, EndpointToken); err != nil {
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
		header:      http.Header{"Authorization": {creds.BasicAuth()}},
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
	if err := creds.Validate(API, EndpointRevoke); err != nil {
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
		header:      http.Header{"Authorization": {creds.BasicAuth()}},
		contentType: formContentType,
		body:        []byte(form.Encode()),
		classify:    classifyOAuth,
	})
	return err
}

// classifyOAuth sorts the error responses of the token and revoke endpoints: the shared OAuth2
// classification (oauth.Classify), where a 400 with gateway fault 900901 or 900902 is Rejected
// too. Any 401 or 403 here is about the Basic credentials (gateway faults included), since these
// endpoints take no Bearer token.
func classifyOAuth(status int, eb errorBody) upstream.Kind {
	kind := oauth.Classify(status, eb.oauth)
	if kind == upstream.Invalid && status == http.StatusBadRequest && (eb.fault == "900901" || eb.fault == "900902") {
		return upstream.Rejected
	}
	return kind
}

func parseToken(resp upstream.Response) (Token, error) {
	tr, err := oauth.ParseTokenResponse(API, EndpointToken, resp)
	if err != nil {
		return Token{}, err
	}
	return Token{AccessToken: tr.AccessToken, TokenType: tr.TokenType, Scope: tr.Scope, ExpiresIn: tr.ExpiresIn,
		LifetimeAssumed: tr.LifetimeAssumed, LifetimeCapped: tr.LifetimeCapped}, nil
}
