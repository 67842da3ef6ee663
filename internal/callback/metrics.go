package callback

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/log"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The endpoints and reasons of RejectedTotal. A reason names what was wrong, never a value.
const (
	endpointStart    = "start"
	endpointCallback = "callback"

	// reasonMalformed: no state, or one that cannot be the operator's.
	reasonMalformed = "malformed"
	// reasonCookieMissing: a callback without the cookie the start endpoint set (another browser, or
	// one that never opened the link).
	reasonCookieMissing = "cookie_missing"
	// reasonCookieMismatch: a cookie of the state's name whose value does not bind it, or the plain
	// cookie for an https callback.
	reasonCookieMismatch = "cookie_mismatch"
	// reasonUnknownState: well-formed and bound, but no live consent has it (used, replaced, expired).
	reasonUnknownState = "unknown_state"
	// reasonRateLimited: over the server's request rate (the request was not looked at).
	reasonRateLimited = "rate_limited"
)

// RejectedTotal counts the requests the start endpoint and the callback refused, by endpoint and
// reason. It is registered with controller-runtime's registry, next to internal/metrics' series.
var RejectedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "thingspace",
	Name:      "oauth_callback_rejected_total",
	Help:      "Requests to the OAuth2 start and callback endpoints refused, by endpoint (start, callback) and reason (malformed, cookie_missing, cookie_mismatch, unknown_state, rate_limited).",
}, []string{"endpoint", "reason"})

func init() {
	ctrlmetrics.Registry.MustRegister(RejectedTotal)
	// Every series exists from the start, so a rate over them needs no first rejection.
	for _, r := range []string{reasonMalformed, reasonUnknownState, reasonRateLimited} {
		RejectedTotal.WithLabelValues(endpointStart, r)
	}
	for _, r := range []string{reasonMalformed, reasonCookieMissing, reasonCookieMismatch, reasonUnknownState, reasonRateLimited} {
		RejectedTotal.WithLabelValues(endpointCallback, r)
	}
}

// reject counts and logs a refused request (the reason only: never the state, token or code) and
// returns o.
func (h *Handler) reject(ctx context.Context, endpoint, reason string, o outcome) outcome {
	RejectedTotal.WithLabelValues(endpoint, reason).Inc()
	log.FromContext(ctx).Info("OAuth2 request refused", "endpoint", endpoint, "reason", reason)
	return o
}
