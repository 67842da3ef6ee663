// Package simulator is a fake of Verizon's ThingSpace gateway and Verizon
// Cloud that speaks the wire contract in the shared
// thingspace-api.md. Verizon cannot be reached from tests, the demo or
// benchmarks, so they run against this instead; acceptance runs use an
// independent implementation of the same contract, so this package models
// the contract literally rather than guessing at Verizon internals.
//
// A Server is an http.Handler. Each API family lives in its own file with its
// own state and registers its routes on the shared mux:
//
//   - tsoauth.go: §1 ThingSpace OAuth2 client-credentials token and revoke.
//   - m2m.go:     §2 M2M (UWS) session: login, logout, password reset, the
//     accounts keep-alive call, lockout, and their /admin/m2m/* controls;
//     m2m_tied.go: the switch tying a session to the Bearer that logged in.
//   - cloud.go:   §3 Verizon Cloud OAuth2 authorization code: authorize
//     (consenting at once, or refusing on a switch), code exchange, rotating
//     refresh tokens, an account call to test access tokens, revocation, and
//     their /admin/cloud/* controls.
//   - admin.go:   /admin/* and /healthz, unauthenticated test controls.
//
// Cross-cutting behaviour (fault injection and latency on /api/... and
// /cloud/..., request counting) is applied once in Server.ServeHTTP, so new
// families get it for free. The admin endpoints have no authentication: bind to loopback only.
// Tokens and secrets are never logged.
package simulator
