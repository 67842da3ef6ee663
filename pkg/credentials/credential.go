package credentials

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// DefaultTokenType is used when a Secret carries no token_type (an M2MSession Secret has none).
const DefaultTokenType = "Bearer"

// SessionHeader is the header that carries an M2M session token.
const SessionHeader = "VZ-M2M-Token"

var (
	// ErrNoCredential means the source has no usable credential: the Secret is missing, not yet written,
	// or lacks the keys of any kind the operator writes.
	ErrNoCredential = errors.New("credentials: no credential")
	// ErrExpired means the last credential read is past its ExpiresAt and nothing newer has arrived.
	ErrExpired = errors.New("credentials: credential expired")
)

// keys are the data keys a source reads; everything else in a Secret is ignored.
var keys = []string{
	v1alpha1.SecretKeyAccessToken,
	v1alpha1.SecretKeyTokenType,
	v1alpha1.SecretKeyExpiresAt,
	v1alpha1.SecretKeySessionToken,
	v1alpha1.SecretKeyAccessTokenExpiresAt,
}

// Credential is what one operator Secret carries at one moment.
type Credential struct {
	// AccessToken is the Bearer token (for an M2MSession Secret: the app token its calls carry).
	AccessToken string
	// TokenType is the Authorization scheme, "Bearer" when the Secret does not say.
	TokenType string
	// SessionToken is the M2M session token (the VZ-M2M-Token header); only for an M2MSession Secret.
	SessionToken string
	// ExpiresAt is the earliest expiry of what the credential carries. An M2M session token has no
	// expiry of its own (it ends after 20 minutes unused), so for an M2MSession Secret this is
	// access_token_expires_at.
	ExpiresAt time.Time
	// Version changes whenever the credential changes, and only then. It is derived from the content,
	// so two sources reading the same Secret agree on it; it reveals nothing about the tokens.
	Version string
	// ObservedAt is when this source first saw this Version.
	ObservedAt time.Time
}

// IsSession reports whether the credential is an M2M session (it carries a session token).
func (c Credential) IsSession() bool { return c.SessionToken != "" }

// Authorization is the Authorization header value: "<token_type> <access_token>".
func (c Credential) Authorization() string {
	typ := c.TokenType
	if typ == "" {
		typ = DefaultTokenType
	}
	return typ + " " + c.AccessToken
}

// String describes the credential without its tokens, so logging one by mistake leaks nothing.
func (c Credential) String() string {
	kind := "token"
	if c.IsSession() {
		kind = "m2m-session"
	}
	return fmt.Sprintf("Credential{%s version=%s expiresAt=%s}", kind, c.Version, c.ExpiresAt.UTC().Format(time.RFC3339))
}

// GoString is String, so %#v leaks nothing either.
func (c Credential) GoString() string { return c.String() }

// parse turns a Secret's data into a Credential, telling the kind from the keys. Errors name keys,
// never values.
func parse(data map[string][]byte) (Credential, error) {
	get := func(k string) string { return strings.TrimSpace(string(data[k])) }
	c := Credential{
		AccessToken:  get(v1alpha1.SecretKeyAccessToken),
		TokenType:    get(v1alpha1.SecretKeyTokenType),
		SessionToken: get(v1alpha1.SecretKeySessionToken),
	}
	if c.TokenType == "" {
		c.TokenType = DefaultTokenType
	}
	if c.AccessToken == "" {
		return Credential{}, fmt.Errorf("%w: key %s is missing or empty", ErrNoCredential, v1alpha1.SecretKeyAccessToken)
	}
	// Expiry keys by kind: an M2MSession Secret dates its Bearer with access_token_expires_at; an app or
	// Cloud Secret with expires_at. Any of them present counts, and the earliest wins.
	expiryKeys := []string{v1alpha1.SecretKeyExpiresAt}
	if _, ok := data[v1alpha1.SecretKeySessionToken]; ok {
		if c.SessionToken == "" {
			return Credential{}, fmt.Errorf("%w: key %s is empty", ErrNoCredential, v1alpha1.SecretKeySessionToken)
		}
		expiryKeys = []string{v1alpha1.SecretKeyAccessTokenExpiresAt, v1alpha1.SecretKeyExpiresAt}
	}
	for _, k := range expiryKeys {
		v := get(k)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return Credential{}, fmt.Errorf("%w: key %s is not an RFC 3339 time", ErrNoCredential, k)
		}
		if c.ExpiresAt.IsZero() || t.Before(c.ExpiresAt) {
			c.ExpiresAt = t
		}
	}
	if c.ExpiresAt.IsZero() {
		return Credential{}, fmt.Errorf("%w: key %s is missing", ErrNoCredential, expiryKeys[0])
	}
	c.Version = version(c)
	return c, nil
}

// version is a digest of the credential's content: equal content, equal version.
func version(c Credential) string {
	h := sha256.New()
	for _, v := range []string{c.AccessToken, c.TokenType, c.SessionToken, c.ExpiresAt.UTC().Format(time.RFC3339Nano)} {
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
