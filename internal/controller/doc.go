// Package controller holds the reconcilers, one per kind, and nothing else. Each pass gathers (the
// object, its Secrets, the credentials, what the process remembers), asks a pure policy of
// internal/policy what to do and when to look again, acts (upstream calls through the clients and the
// token broker, Secret writes through internal/secrets) and records the outcome in status through the
// one record step of internal/memo, which remembers it before writing it so a side effect is never
// repeated when the write fails.
//
// Errors are sorted where they happen. Kubernetes API failures are returned, so controller-runtime
// retries them with its rate limiter. Upstream failures are recorded in status and retried on the
// operator's own schedule (capped exponential backoff with jitter, honouring Retry-After, landing before
// the current credential expires), which controller-runtime's limiter cannot express; they return a
// RequeueAfter with a nil error. Rejected credentials and invalid specs set a condition and wait for a
// watch event; nothing is retried against the upstream. Only unambiguous upstream answers are terminal.
//
// Upstream calls whose answers must be stored (a password reset, a refresh-token rotation, a code
// exchange) run past the reconcile's cancellation and register with internal/inflight, which the
// manager drains before exiting.
package controller
