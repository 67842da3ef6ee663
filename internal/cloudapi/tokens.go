package cloudapi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
)

// Tokens are what the token endpoint issued. Every way of printing them (fmt verbs, JSON, slog,
// logr) redacts AccessToken and RefreshToken; read the fields directly to use or store them.
// Consequence: json.Marshal of Tokens is redacted too (the tags name the fields in logs).
type Tokens struct {
	AccessToken string `json:"accessToken"`
	// RefreshToken replaces the one the tokens were obtained with. Empty after a Refresh whose
	// response had none: the old one stays valid.
	RefreshToken string `json:"refreshToken"`
	// TokenType is "Bearer" unless the upstream says otherwise.
	TokenType string `json:"tokenType,omitempty"`
	// ExpiresIn is the access token's lifetime at the time of the response. Compute expiry from a
	// time taken BEFORE the request: that errs on the early side.
	ExpiresIn time.Duration `json:"expiresIn"`
	// LifetimeAssumed is set when the answer had no expires_in: ExpiresIn is
	// oauth.AssumedExpiresIn. The tokens are usable and RefreshToken must still be stored.
	LifetimeAssumed bool `json:"lifetimeAssumed,omitempty"`
	// LifetimeCapped is set when the answer's expires_in exceeded oauth.MaxExpiresIn.
	LifetimeCapped bool `json:"lifetimeCapped,omitempty"`
}

// redactedTokens is Tokens with the secrets replaced and without methods, for the encoders.
type redactedTokens Tokens

func (t Tokens) redacted() redactedTokens {
	t.AccessToken, t.RefreshToken = upstream.Redact(t.AccessToken), upstream.Redact(t.RefreshToken)
	return redactedTokens(t)
}

// String renders the tokens redacted: {AccessToken:[REDACTED] RefreshToken:[REDACTED] ...}.
func (t Tokens) String() string {
	r := t.redacted()
	s := "{AccessToken:" + r.AccessToken + " RefreshToken:" + r.RefreshToken + " TokenType:" + r.TokenType +
		" ExpiresIn:" + r.ExpiresIn.String()
	// The flags only when set, so the common rendering stays short.
	if r.LifetimeAssumed {
		s += " LifetimeAssumed:true"
	}
	if r.LifetimeCapped {
		s += " LifetimeCapped:true"
	}
	return s + "}"
}

// GoString serves %#v.
func (t Tokens) GoString() string {
	r := t.redacted()
	return "cloudapi.Tokens{AccessToken:" + strconv.Quote(r.AccessToken) + ", RefreshToken:" + strconv.Quote(r.RefreshToken) +
		", TokenType:" + strconv.Quote(r.TokenType) + ", ExpiresIn:" + strconv.FormatInt(int64(r.ExpiresIn), 10) +
		", LifetimeAssumed:" + strconv.FormatBool(r.LifetimeAssumed) + ", LifetimeCapped:" + strconv.FormatBool(r.LifetimeCapped) + "}"
}

// Format makes every fmt verb (%v, %+v, %#v, %s, %q, %x, ...) go through the redacted forms.
func (t Tokens) Format(f fmt.State, verb rune) {
	upstream.FormatRedacted(f, verb, t.String(), t.GoString())
}

// MarshalJSON keeps structured loggers that encode values as JSON from printing the tokens.
func (t Tokens) MarshalJSON() ([]byte, error) { return json.Marshal(t.redacted()) }

// LogValue serves log/slog.
func (t Tokens) LogValue() slog.Value { return slog.AnyValue(t.redacted()) }

// MarshalLog serves logr (github.com/go-logr/logr.Marshaler).
func (t Tokens) MarshalLog() any { return t.redacted() }
