// Package upstream holds the plumbing every upstream API client of the operator shares: an
// *http.Client with bounded timeouts and an optional private CA bundle, bounded body reads,
// Retry-After parsing, a per-request observer hook for metrics, and the typed Error that sorts
// every failure into Transient, Rejected, Invalid or Unknown.
//
// The one rule of this package: an Error's message carries only the API, the endpoint, the HTTP
// status and the upstream's machine-readable code. It never carries a token, a secret, a header
// or any part of a request or response body, so it can go to logs, events and status as is
// (field notes: "leaks"; ESO #2401).
package upstream
