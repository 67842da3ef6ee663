package thingspace

import "encoding/json"

// errorBody holds the machine-readable parts of an error response, and nothing else: free text
// (error_description, fault.message, fault.description, errorMessage) is never even decoded, so
// it cannot reach an error, a log or a status. Upstreams have echoed credentials in such text.
type errorBody struct {
	oauth string // a known OAuth2 error code ("invalid_client"), or ""
	fault string // a gateway fault code, digits only ("900901"), or ""
	m2m   string // an M2M errorCode shaped like a dotted identifier (see parseM2MCode), or ""
}

// code is the value for upstream.Error.Code.
func (e errorBody) code() string {
	// An M2M errorCode is the most specific statement a body can make; only M2M calls get one.
	switch {
	case e.m2m != "":
		return e.m2m
	case e.oauth != "":
		return e.oauth
	}
	return e.fault
}

// knownOAuthErrors is the OAuth2 error vocabulary (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1,
// RFC 7009 §2.2.1). Only these are copied into errors: an "error" member is upstream-controlled
// and may hold anything, including an echoed secret that happens to look like a code.
var knownOAuthErrors = map[string]bool{
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

// maxFaultCodeDigits bounds a fault code; gateway codes are six digits.
const maxFaultCodeDigits = 9

// parseErrorBody extracts the codes it recognises from an error response body. Anything it does
// not recognise (not JSON, unexpected types, unknown codes) is ignored: the status alone still
// classifies the response.
func parseErrorBody(body []byte) errorBody {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return errorBody{}
	}
	var eb errorBody
	var oauth string
	if raw, ok := top["error"]; ok && json.Unmarshal(raw, &oauth) == nil && knownOAuthErrors[oauth] {
		eb.oauth = oauth
	}
	var fault map[string]json.RawMessage
	if raw, ok := top["fault"]; ok && json.Unmarshal(raw, &fault) == nil {
		eb.fault = parseFaultCode(fault["code"])
	}
	if raw, ok := top["errorCode"]; ok {
		eb.m2m = parseM2MCode(raw)
	}
	return eb
}

// parseFaultCode accepts the documented JSON string ("900901") and tolerates a JSON number.
func parseFaultCode(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return ""
		}
		s = n.String()
	}
	if len(s) == 0 || len(s) > maxFaultCodeDigits {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "" // also rejects "9.009e5", "-1": not a code
		}
	}
	return s
}
