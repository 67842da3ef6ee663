// Package proxy is the token sidecar behind cmd/thingspace-proxy: a reverse proxy to one ThingSpace
// or Verizon Cloud upstream whose transport (pkg/credentials.Transport) sets the Authorization and
// VZ-M2M-Token headers from what the operator wrote, so that a workload in any language calls
// http://localhost:<port>/api/... with no token code.
//
// The pieces have hard edges so each is tested alone: Config (flags), Handler (the one-upstream
// reverse proxy: credential headers the client sent stripped, CONNECT and the M2M session's logout
// and password reset refused, absolute-URI hosts ignored), Tracker (the credential held, for
// readiness and the credential metrics), Metrics, the health and metrics handler, and Start/Serve
// (listeners, timeouts, graceful shutdown).
//
// The proxy never fetches a token: the operator stays the single writer of credentials. No
// credential, Authorization header or upstream body is logged or put in a metric.
package proxy
