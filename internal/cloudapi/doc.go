// Package cloudapi is the HTTP client for the Verizon Personal Cloud Storage OAuth2 API (§3 of
// the shared wire contract, thingspace-api.md): the authorization URL a person's browser is sent
// to, the token endpoint's authorization-code exchange and refresh grants, and a read-only
// account call that proves an access token works.
//
// It is built on the same plumbing as package thingspace (upstream.Engine, upstream/oauth), so
// it has the same bounds and hygiene: every call has a timeout, redirects are never followed,
// every request is observed once, and every error is an *upstream.Error whose message carries
// only the API, endpoint, status and a known OAuth2 error code, never a code, token, refresh
// token, secret or error_description. Tokens and Credentials are redacted in every rendering.
// The client holds no state and never retries.
//
// # Refresh tokens rotate
//
// Every refresh returns a new refresh token and ends the old one, so a refresh must be acted on
// exactly once:
//   - Unanswered(err): the refresh was written out in full and no complete answer came back.
//     Verizon may have rotated the token: never send the old one again.
//   - NeedsReauthorization(err): Verizon refused the refresh token or code (invalid_grant, or a
//     401 without a code): it expired, was revoked or was already used. The user must authorize
//     again.
//   - ClientRejected(err): Verizon refused the app's key or secret (invalid_client,
//     unauthorized_client). Retrying cannot help until they change.
//   - A malformed 2xx (Transient, StatusCode 2xx) means Verizon accepted the request but its
//     answer cannot be used: after a refresh the old refresh token has probably been rotated.
//   - Otherwise upstream.KindOf tells what to do: Transient (network, 408, 429, 5xx,
//     server_error, temporarily_unavailable; with upstream.RetryAfterOf), Rejected, Invalid
//     (other 400s, 404, 405, arguments refused before sending) or Unknown.
package cloudapi
