// Package thingspace is the HTTP client for the Verizon ThingSpace API, built on the [doc] and
// [sdk] facts of the shared wire contract (thingspace-api.md), never on its [guess] ones.
//
// One file per API family, all sending through the request helper in request.go (on the shared
// upstream.Engine; OAuth2 pieces from upstream/oauth):
//   - oauth.go: §1, the OAuth2 client-credentials token and its revoke;
//   - m2m.go: §2, the M2M (UWS) session calls (login, logout, password reset, the accounts
//     keep-alive), their error classification and the UWS credential rules.
//
// The client only speaks the wire protocol and sorts failures into upstream.Kind; it holds no
// state, caches nothing and never retries: retry, backoff and renewal policy belong to the
// controllers, which can see expiry, Retry-After and the credential's history. Every error it
// returns is an *upstream.Error whose message is safe to log.
package thingspace
