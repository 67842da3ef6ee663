package oauth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/credops/thingspace-operator/internal/upstream"
)

// Name gives an instance of Credentials the type name %#v prints. Each client package declares
// an empty struct type whose GoName returns its own spelling, e.g. "thingspace.Credentials", and
// aliases Credentials instantiated with it, so the one implementation renders as that package's
// type.
type Name interface{ GoName() string }

// Credentials are an OAuth2 client's key (client_id) and secret. Every way of printing them (fmt
// verbs, JSON, slog, logr) redacts Secret; only the Authorization header of a request carries it.
// Consequence: json.Marshal of Credentials is redacted too.
type Credentials[N Name] struct {
	Key, Secret string
}

// Validate refuses credentials that cannot be sent as HTTP Basic: an empty part, a colon in the
// key (RFC 7617: it would split differently on the server), control characters. The error is an
// Invalid *upstream.Error with no status, for api and endpoint.
func (c Credentials[N]) Validate(api, endpoint string) error {
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
	return upstream.NewError(api, endpoint, 0, upstream.Invalid, reason, nil)
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// BasicAuth is the Authorization header value: "Basic " + base64(key:secret), with no
// form-encoding of the parts.
func (c Credentials[N]) BasicAuth() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.Key+":"+c.Secret))
}

// String renders the key and a redacted secret.
func (c Credentials[N]) String() string {
	return "{Key:" + c.Key + " Secret:" + upstream.Redact(c.Secret) + "}"
}

// GoString serves %#v, under the name N gives.
func (c Credentials[N]) GoString() string {
	var n N
	return n.GoName() + "{Key:" + strconv.Quote(c.Key) + ", Secret:" + strconv.Quote(upstream.Redact(c.Secret)) + "}"
}

// Format makes every fmt verb (%v, %+v, %#v, %s, %q, %x, ...) go through the redacted forms.
func (c Credentials[N]) Format(f fmt.State, verb rune) {
	upstream.FormatRedacted(f, verb, c.String(), c.GoString())
}

// MarshalJSON keeps structured loggers that encode values as JSON from printing the secret.
func (c Credentials[N]) MarshalJSON() ([]byte, error) { return json.Marshal(c.redacted()) }

// LogValue serves log/slog.
func (c Credentials[N]) LogValue() slog.Value {
	return slog.GroupValue(slog.String("key", c.Key), slog.String("secret", upstream.Redact(c.Secret)))
}

// MarshalLog serves logr (github.com/go-logr/logr.Marshaler).
func (c Credentials[N]) MarshalLog() any { return c.redacted() }

type redactedCredentials struct {
	Key    string `json:"key"`
	Secret string `json:"secret"`
}

func (c Credentials[N]) redacted() redactedCredentials {
	return redactedCredentials{Key: c.Key, Secret: upstream.Redact(c.Secret)}
}
