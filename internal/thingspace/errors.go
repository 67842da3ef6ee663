package thingspace

import (
	"encoding/json"

	"github.com/credops/thingspace-operator/internal/upstream/oauth"
)

// errorBody holds the machine-readable parts of an error response, and nothing else: free text
// (error_description, fault.message, fault.description, errorMessage) is never even decoded, so
// it cannot reach an error, a log or a status. Upstreams have echoed credentials in such text.
type errorBody struct {
	oauth string // a known OAuth2 error code ("invalid_client", see oauth.ErrorCode), or ""
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
	eb := errorBody{oauth: oauth.ErrorCode(top["error"])}
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
