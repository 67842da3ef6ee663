package oauth

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
)

// MaxExpiresInSeconds rejects absurd lifetimes (the documented ones are an hour) before they
// become a time.Duration; renewal policy beyond that is the controllers'.
const MaxExpiresInSeconds = math.MaxInt32

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

// ParseExpiresIn accepts a positive integer number of seconds up to MaxExpiresInSeconds: a JSON
// number (documented), or, tolerated, an integral float ("3600.0") or a quoted integer ("3600")
// as some gateways send.
func ParseExpiresIn(raw json.RawMessage) (time.Duration, bool) {
	s := strings.TrimSpace(string(raw))
	if len(s) >= 2 && s[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != math.Trunc(f) || f < 1 || f > MaxExpiresInSeconds {
			return 0, false
		}
		n = int64(f)
	}
	if n < 1 || n > MaxExpiresInSeconds {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
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
	// ExpiresIn is positive (see ParseExpiresIn).
	ExpiresIn time.Duration
}

// ParseTokenResponse decodes and checks the body of resp, a 2xx answer of api's endpoint. A body
// that is not a token object, or whose access_token or expires_in is missing or unusable, is an
// upstream.Malformed error (Transient) with resp's status. Members other than the four above are
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
	expiresIn, ok := ParseExpiresIn(tr.ExpiresIn)
	if !ok {
		return TokenResponse{}, upstream.Malformed(api, endpoint, resp.Status, "expires_in missing or not a positive integer", nil)
	}
	t := TokenResponse{AccessToken: tr.AccessToken, TokenType: tr.TokenType, Scope: tr.Scope, ExpiresIn: expiresIn}
	if t.TokenType == "" {
		t.TokenType = "Bearer"
	}
	return t, nil
}
