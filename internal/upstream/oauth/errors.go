package oauth

import (
	"encoding/json"
	"net/http"

	"github.com/credops/thingspace-operator/internal/upstream"
)

// knownErrors is the OAuth2 error vocabulary (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1,
// RFC 7009 §2.2.1). Only these are ever copied into errors: an "error" member is
// upstream-controlled and may hold anything, including an echoed secret that happens to look
// like a code.
var knownErrors = map[string]bool{
	"invalid_request":           true,
	"invalid_client":            true,
	"invalid_grant":             true,
	"unauthorized_client":       true,
	"unsupported_grant_type":    true,
	"invalid_scope":             true,
	"access_denied":             true,
	"unsupported_response_type": true,
	"server_error":              true,
	"temporarily_unavailable":   true,
	"invalid_token":             true,
	"insufficient_scope":        true,
	"unsupported_token_type":    true,
}

// ErrorCode returns the "error" member of an error response, given raw, when it is a JSON string
// holding a known OAuth2 error code, and "" otherwise.
func ErrorCode(raw json.RawMessage) string {
	var code string
	if raw == nil || json.Unmarshal(raw, &code) != nil || !knownErrors[code] {
		return ""
	}
	return code
}

// ParseErrorCode returns the known OAuth2 error code of an error response body
// ({"error":"invalid_grant",...}), or "" when the body is not such an object or the code is not a
// known one. Nothing else of the body is decoded.
func ParseErrorCode(body []byte) string {
	var eb struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &eb) != nil {
		return ""
	}
	return ErrorCode(eb.Error)
}

// Classify sorts an error response of a token endpoint (RFC 6749 §5.2) by its status and its
// known code (see ErrorCode):
//   - Transient: 408, 429, 5xx, and server_error or temporarily_unavailable whatever the status;
//   - Rejected: 401 and 403 (the client credentials, or the grant, were refused), and 400 with
//     invalid_grant, invalid_client or unauthorized_client;
//   - Invalid: any other 400 (invalid_request, invalid_scope, unsupported_grant_type, no code),
//     404 and 405 (a wrong base URL or path prefix: retrying cannot help);
//   - Unknown: anything else (3xx, since redirects are not followed, and other 4xx).
func Classify(status int, code string) upstream.Kind {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
		return upstream.Transient
	case code == "server_error", code == "temporarily_unavailable":
		return upstream.Transient
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return upstream.Rejected
	case status == http.StatusBadRequest:
		switch code {
		case "invalid_client", "unauthorized_client", "invalid_grant":
			return upstream.Rejected
		}
		return upstream.Invalid
	case status == http.StatusNotFound, status == http.StatusMethodNotAllowed:
		return upstream.Invalid
	default:
		return upstream.Unknown
	}
}
