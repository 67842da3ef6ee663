// Package controller holds the reconcilers, one per kind. They only orchestrate: reading Kubernetes
// objects, asking the upstream clients (internal/thingspace) through the token broker, writing Secrets
// through internal/secrets, and deciding when with the pure functions of internal/renewal.
//
// Errors are sorted where they happen. Kubernetes API failures are returned, so controller-runtime
// retries them with its rate limiter. Upstream failures are recorded in status and retried on the
// operator's own schedule (capped exponential backoff with jitter, honouring Retry-After, landing before
// the current credential expires), which controller-runtime's limiter cannot express; they return a
// RequeueAfter with a nil error. Rejected credentials and invalid specs set a condition and wait for a
// watch event; nothing is retried against the upstream.
package controller
