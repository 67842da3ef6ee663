package simulator

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Shared wire helpers for every API family.

// maxFormBytes bounds request bodies; real requests are a few hundred bytes.
const maxFormBytes = 64 << 10

// gatewayFault is the API gateway's error envelope. Code is a JSON string per
// the contract ("900902", not 900902).
type gatewayFault struct {
	Fault struct {
		Code        string `json:"code"`
		Message     string `json:"message"`
		Description string `json:"description"`
	} `json:"fault"`
}

// oauthError is the RFC 6749 error body.
type oauthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is already sent; an encode error can only be a broken
	// connection, which nobody is left to tell.
	_ = json.NewEncoder(w).Encode(v)
}

func writeGatewayFault(w http.ResponseWriter, status int, code, message, description string) {
	var f gatewayFault
	f.Fault.Code, f.Fault.Message, f.Fault.Description = code, message, description
	writeJSON(w, status, f)
}

func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	// RFC 6749 §5.1: token responses must not be cached, errors included.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, status, oauthError{Error: code, ErrorDescription: description})
}

// basicAuth splits the Authorization header. present is false when there is
// no Basic header at all (the gateway's "Missing Credentials"); ok is false
// when a Basic header is there but cannot be decoded.
func basicAuth(r *http.Request) (user, pass string, present, ok bool) {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", false, false
	}
	user, pass, ok = r.BasicAuth()
	return user, pass, true, ok
}

// parseForm reads an application/x-www-form-urlencoded body. Query-string
// parameters are deliberately not merged in: the contract sends them in the
// body, and a client that puts them in the URL should find out here.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	return r.ParseForm()
}
