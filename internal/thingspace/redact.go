package thingspace

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"
)

// Credentials and Token redact their secret part in every rendering a log line or an event can
// reach: fmt (all verbs, through Format), JSON (zap and other structured encoders), slog
// (LogValue) and logr (MarshalLog). Read the fields directly to use the values.
//
// Consequence: json.Marshal of a Credentials or Token is redacted too. To store a token, write
// Token.AccessToken explicitly.

// Redacted replaces a secret value in every rendering.
const Redacted = "[REDACTED]"

func mask(s string) string {
	if s == "" {
		return "" // Showing that a value is missing helps debugging and reveals nothing.
	}
	return Redacted
}

// String renders the key and a redacted secret.
func (c Credentials) String() string {
	return "{Key:" + c.Key + " Secret:" + mask(c.Secret) + "}"
}

// GoString serves %#v.
func (c Credentials) GoString() string {
	return "thingspace.Credentials{Key:" + strconv.Quote(c.Key) + ", Secret:" + strconv.Quote(mask(c.Secret)) + "}"
}

// Format makes every fmt verb (%v, %+v, %#v, %s, %q, %x, ...) go through the redacted forms;
// without it %x or %d would print the raw fields.
func (c Credentials) Format(f fmt.State, verb rune) { format(f, verb, c.String(), c.GoString()) }

// MarshalJSON keeps structured loggers that encode values as JSON from printing the secret.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(redactedCredentials{Key: c.Key, Secret: mask(c.Secret)})
}

// LogValue serves log/slog.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("key", c.Key), slog.String("secret", mask(c.Secret)))
}

// MarshalLog serves logr (github.com/go-logr/logr.Marshaler).
func (c Credentials) MarshalLog() any {
	return redactedCredentials{Key: c.Key, Secret: mask(c.Secret)}
}

type redactedCredentials struct {
	Key    string `json:"key"`
	Secret string `json:"secret"`
}

// String renders the token with AccessToken redacted.
func (t Token) String() string {
	return "{AccessToken:" + mask(t.AccessToken) + " TokenType:" + t.TokenType + " Scope:" + t.Scope +
		" ExpiresIn:" + t.ExpiresIn.String() + "}"
}

// GoString serves %#v.
func (t Token) GoString() string {
	return "thingspace.Token{AccessToken:" + strconv.Quote(mask(t.AccessToken)) +
		", TokenType:" + strconv.Quote(t.TokenType) + ", Scope:" + strconv.Quote(t.Scope) +
		", ExpiresIn:" + strconv.FormatInt(int64(t.ExpiresIn), 10) + "}"
}

// Format: see Credentials.Format.
func (t Token) Format(f fmt.State, verb rune) { format(f, verb, t.String(), t.GoString()) }

// MarshalJSON: see Credentials.MarshalJSON.
func (t Token) MarshalJSON() ([]byte, error) { return json.Marshal(t.redacted()) }

// LogValue serves log/slog.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("accessToken", mask(t.AccessToken)),
		slog.String("tokenType", t.TokenType),
		slog.String("scope", t.Scope),
		slog.Duration("expiresIn", t.ExpiresIn),
	)
}

// MarshalLog serves logr.
func (t Token) MarshalLog() any { return t.redacted() }

type redactedToken struct {
	AccessToken string        `json:"accessToken"`
	TokenType   string        `json:"tokenType,omitempty"`
	Scope       string        `json:"scope,omitempty"`
	ExpiresIn   time.Duration `json:"expiresIn"`
}

func (t Token) redacted() redactedToken {
	return redactedToken{AccessToken: mask(t.AccessToken), TokenType: t.TokenType, Scope: t.Scope, ExpiresIn: t.ExpiresIn}
}

func format(f fmt.State, verb rune, s, goSyntax string) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = io.WriteString(f, goSyntax)
	case verb == 'q':
		_, _ = io.WriteString(f, strconv.Quote(s))
	default:
		_, _ = io.WriteString(f, s)
	}
}
