package upstream

import "strconv"

// Observer is called exactly once per upstream request with a short endpoint name (for example
// "token" or "revoke") and the HTTP status as a string ("200", "503"), or CodeError when no
// complete response arrived (network or TLS failure, timeout). The operator wires it to a
// Prometheus counter, so both arguments come from small, fixed sets.
type Observer func(endpoint, code string)

// CodeError is the Observer code for a request that got no complete HTTP response.
const CodeError = "error"

// Observe calls o, if set, with status as its code; a status of 0 means CodeError. Clients call
// this so a nil Observer needs no checks.
func (o Observer) Observe(endpoint string, status int) {
	if o == nil {
		return
	}
	code := CodeError
	if status > 0 {
		code = strconv.Itoa(status)
	}
	o(endpoint, code)
}
