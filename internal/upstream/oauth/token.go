package oauth

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
)

// Lifetime bounds of a token answer (issue 8 scenarios 7, 12 and 18; README "Token lifetimes").
const (
	// AssumedExpiresIn is the lifetime given to a token whose answer has no (or a null)
	// expires_in, which RFC 6749 §5.1 only recommends. It is conservative: the documented
	// lifetimes are an hour, so the token is renewed well before an unannounced expiry, and a
	// refresh token that came with it is still stored.
	AssumedExpiresIn = 10 * time.Minute
	// MaxExpiresIn caps the lifetime an upstream may announce. The documented ones are an hour;
	// a day already means something is wrong, and trusting "68 years" would never renew.
	MaxExpiresIn = 24 * time.Hour
)

// IsTokenValue reports whether s can go into an Authorization header as is: non-empty printable
// ASCII without spaces. Anything else would break, or inject into, the header it is sent in.
func IsTokenValue(s string) bool {
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

// IsVSChars reports whether s is 1*VSCHAR (RFC 6749 Appendix A: printable ASCII, space
// included), the syntax of an authorization code and of a refresh token.
func IsVSChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

// CheckTokenArg refuses a token argument that is empty or cannot be sent as a header value as
// is (see IsTokenValue), before anything is sent: an Invalid *upstream.Error with no status whose
// message names what ("app token", "access token") and never quotes the value.
func CheckTokenArg(api, endpoint, what, v string) error {
	return checkArg(api, endpoint, what, v, IsTokenValue, "is not a valid header value")
}

// CheckGrantArg refuses an authorization code or refresh token argument that is empty or not
// 1*VSCHAR (see IsVSChars), like CheckTokenArg. A stray newline from a Secret would otherwise
// spend the grant on an invalid_grant.
func CheckGrantArg(api, endpoint, what, v string) error {
	return checkArg(api, endpoint, what, v, IsVSChars, "contains characters a token cannot hold")
}

func checkArg(api, endpoint, what, v string, valid func(string) bool, problem string) error {
	switch {
	case v == "":
		return upstream.NewError(api, endpoint, 0, upstream.Invalid, what+" is empty", nil)
	case !valid(v):
		return upstream.NewError(api, endpoint, 0, upstream.Invalid, what+" "+problem, nil)
	}
	return nil
}

// Lifetime is a parsed expires_in.
type Lifetime struct {
	// ExpiresIn is in [0, MaxExpiresIn]; 0 means "expired now".
	ExpiresIn time.Duration
	// Assumed is set when expires_in was missing or null and ExpiresIn is AssumedExpiresIn.
	Assumed bool
	// Capped is set when expires_in exceeded MaxExpiresIn and ExpiresIn is MaxExpiresIn.
	Capped bool
}

// ParseExpiresIn reads an expires_in member (raw is empty when the member is missing): a
// non-negative JSON number of seconds (documented: an integer), or, tolerated, a quoted one as
// some gateways send. Fractions round down to the millisecond; 0 is "expired now" (ThingSpace's
// answer in a token's last second). Missing or null gives AssumedExpiresIn, more than
// MaxExpiresIn is capped, each flagged. ok is false only for a negative or non-numeric value.
func ParseExpiresIn(raw json.RawMessage) (Lifetime, bool) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return Lifetime{ExpiresIn: AssumedExpiresIn, Assumed: true}, true
	}
	if s[0] == '"' {
		if err := json.Unmarshal([]byte(s), &s); err != nil {
			return Lifetime{}, false
		}
	}
	// Only the JSON number syntax: ParseFloat alone would take "Inf", "NaN", "0x10" and "1_0".
	var num json.Number
	if err := json.Unmarshal([]byte(s), &num); err != nil {
		return Lifetime{}, false
	}
	f, err := strconv.ParseFloat(num.String(), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || f < 0 || math.IsNaN(f) {
		return Lifetime{}, false
	}
	if f > MaxExpiresIn.Seconds() { // also +Inf from an out-of-range literal
		return Lifetime{ExpiresIn: MaxExpiresIn, Capped: true}, true
	}
	return Lifetime{ExpiresIn: time.Duration(math.Floor(f*1000)) * time.Millisecond}, true
}

// TokenResponse holds the checked common fields of a 2xx token response (RFC 6749 §5.1). It is
// an intermediate value: it is not redacted, so never print it; the clients turn it into their
// own redacted types at once.
type TokenResponse struct {
	// AccessToken is usable as a Bearer header value (IsTokenValue).
	AccessToken string
	// TokenType is "Bearer" when the response has none.
	TokenType string
	// Scope is as granted; "" when the response has none.
	Scope string
	// ExpiresIn is in [0, MaxExpiresIn]; 0 means the token expires now (see ParseExpiresIn).
	ExpiresIn time.Duration
	// LifetimeAssumed is set when the answer had no expires_in: ExpiresIn is AssumedExpiresIn.
	LifetimeAssumed bool
	// LifetimeCapped is set when the answer's expires_in exceeded MaxExpiresIn, the ExpiresIn.
	LifetimeCapped bool
}

// ParseTokenResponse decodes and checks the body of resp, a 2xx answer of api's endpoint. A body
// that is not a token object, whose access_token is missing or unusable, or whose expires_in is
// negative or not a number, is an upstream.Malformed error (Transient) with resp's status. A
// missing, zero, fractional or huge expires_in is not an error (see ParseExpiresIn): the answer
// may carry a rotated refresh token that must be stored. Members other than the four above are
// left to the caller.
func ParseTokenResponse(api, endpoint string, resp upstream.Response) (TokenResponse, error) {
	var tr struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
		Scope       string          `json:"scope"`
	}
	if err := json.Unmarshal(resp.Body, &tr); err != nil {
		return TokenResponse{}, upstream.Malformed(api, endpoint, resp.Status, "not a token object", err)
	}
	if !IsTokenValue(tr.AccessToken) {
		return TokenResponse{}, upstream.Malformed(api, endpoint, resp.Status, "access_token missing or unusable", nil)
	}
	lt, ok := ParseExpiresIn(tr.ExpiresIn)
	if !ok {
		return TokenResponse{}, upstream.Malformed(api, endpoint, resp.Status, "expires_in is not a non-negative number", nil)
	}
	t := TokenResponse{AccessToken: tr.AccessToken, TokenType: tr.TokenType, Scope: tr.Scope,
		ExpiresIn: lt.ExpiresIn, LifetimeAssumed: lt.Assumed, LifetimeCapped: lt.Capped}
	if t.TokenType == "" {
		t.TokenType = "Bearer"
	}
	return t, nil
}
