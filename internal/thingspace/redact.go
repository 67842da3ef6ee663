package thingspace

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
)

// Credentials, Token and UWSCredentials redact their secret part in every rendering a log line
// or an event can reach: fmt (all verbs, through Format), JSON (zap and other structured
// encoders), slog (LogValue) and logr (MarshalLog). Read the fields directly to use the values.
// (Credentials' methods are those of the shared oauth.Credentials.)
//
// Consequence: json.Marshal of a Credentials or Token is redacted too. To store a token, write
// Token.AccessToken explicitly.

// Redacted replaces a secret value in every rendering.
const Redacted = upstream.Redacted

// String renders the token with AccessToken redacted.
func (t Token) String() string {
	return "{AccessToken:" + upstream.Redact(t.AccessToken) + " TokenType:" + t.TokenType + " Scope:" + t.Scope +
		" ExpiresIn:" + t.ExpiresIn.String() + lifetimeFlags(t) + "}"
}

// lifetimeFlags renders the lifetime flags only when set, so the common rendering stays short.
func lifetimeFlags(t Token) string {
	s := ""
	if t.LifetimeAssumed {
		s += " LifetimeAssumed:true"
	}
	if t.LifetimeCapped {
		s += " LifetimeCapped:true"
	}
	return s
}

// GoString serves %#v.
func (t Token) GoString() string {
	return "thingspace.Token{AccessToken:" + strconv.Quote(upstream.Redact(t.AccessToken)) +
		", TokenType:" + strconv.Quote(t.TokenType) + ", Scope:" + strconv.Quote(t.Scope) +
		", ExpiresIn:" + strconv.FormatInt(int64(t.ExpiresIn), 10) +
		", LifetimeAssumed:" + strconv.FormatBool(t.LifetimeAssumed) + ", LifetimeCapped:" + strconv.FormatBool(t.LifetimeCapped) + "}"
}

// Format makes every fmt verb (%v, %+v, %#v, %s, %q, %x, ...) go through the redacted forms;
// without it %x or %d would print the raw fields.
func (t Token) Format(f fmt.State, verb rune) {
	upstream.FormatRedacted(f, verb, t.String(), t.GoString())
}

// MarshalJSON keeps structured loggers that encode values as JSON from printing the token.
func (t Token) MarshalJSON() ([]byte, error) { return json.Marshal(t.redacted()) }

// LogValue serves log/slog.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("accessToken", upstream.Redact(t.AccessToken)),
		slog.String("tokenType", t.TokenType),
		slog.String("scope", t.Scope),
		slog.Duration("expiresIn", t.ExpiresIn),
		slog.Bool("lifetimeAssumed", t.LifetimeAssumed),
		slog.Bool("lifetimeCapped", t.LifetimeCapped),
	)
}

// MarshalLog serves logr (github.com/go-logr/logr.Marshaler).
func (t Token) MarshalLog() any { return t.redacted() }

type redactedToken struct {
	AccessToken string        `json:"accessToken"`
	TokenType   string        `json:"tokenType,omitempty"`
	Scope       string        `json:"scope,omitempty"`
	ExpiresIn   time.Duration `json:"expiresIn"`
	Assumed     bool          `json:"lifetimeAssumed,omitempty"`
	Capped      bool          `json:"lifetimeCapped,omitempty"`
}

func (t Token) redacted() redactedToken {
	return redactedToken{AccessToken: upstream.Redact(t.AccessToken), TokenType: t.TokenType, Scope: t.Scope, ExpiresIn: t.ExpiresIn,
		Assumed: t.LifetimeAssumed, Capped: t.LifetimeCapped}
}
