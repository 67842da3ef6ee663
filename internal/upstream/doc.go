// Package upstream holds the plumbing every upstream API client of the operator shares: an
// *http.Client with bounded timeouts and an optional private CA bundle, base URL validation, the
// request Engine (a per-call timeout, bounded body reads, no redirects, Retry-After parsing, a
// per-request observer hook for metrics, and a classification callback per API), redaction
// helpers for types that hold secrets, and the typed Error that sorts every failure into
// Transient, Rejected, Invalid or Unknown and says whether a request went out unanswered.
// Subpackage oauth holds the OAuth2 pieces on top (client credentials, error codes, token
// responses).
//
// The one rule of this package: an Error's message carries only the API, the endpoint, the HTTP
// status and the upstream's machine-readable code. It never carries a token, a secret, a header
// or any part of a request or response body, so it can go to logs, events and status as is
// (field notes: "leaks"; ESO #2401).
package upstream
