// Package metrics defines the operator's Prometheus series and registers them with controller-runtime's
// registry, which the manager serves on its metrics endpoint. Per-object series are deleted when the
// object goes, so a cluster with churn does not accumulate dead series.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

const namespace = "thingspace"

var (
	// UpstreamRequests counts calls to Verizon by API, endpoint and HTTP status ("error" for transport
	// failures).
	UpstreamRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "upstream_requests_total",
		Help:      "Requests sent to Verizon APIs, by API, endpoint and HTTP status code (\"error\" when no response arrived).",
	}, []string{"api", "endpoint", "code"})

	appExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "app_token_expiration_timestamp_seconds",
		Help:      "When the token in a ThingSpaceApp's Secret expires, as a Unix timestamp.",
	}, []string{"namespace", "name"})

	appRenewal = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "app_token_renewal_timestamp_seconds",
		Help:      "When a ThingSpaceApp's next planned upstream call is, as a Unix timestamp.",
	}, []string{"namespace", "name"})

	appReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "app_ready",
		Help:      "1 when a ThingSpaceApp's Secret holds a token that has not expired, else 0.",
	}, []string{"namespace", "name"})
)

var (
	// M2MLogins counts UWS logins by result: success, rejected (credentials refused), bearer_rejected
	// (stale app token; not a login failure) or error (transient).
	M2MLogins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "m2m_logins_total",
		Help:      "UWS logins by result (success, rejected, bearer_rejected, error).",
	}, []string{"result"})

	// M2MKeepAlives counts keep-alive calls by result: success, session_expired, bearer_rejected, error.
	M2MKeepAlives = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "m2m_keepalives_total",
		Help:      "Session keep-alive calls by result (success, session_expired, bearer_rejected, error).",
	}, []string{"result"})

	sessionReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "m2m_session_ready",
		Help:      "1 when an M2MSession's Secret holds a live session and a valid app token, else 0.",
	}, []string{"namespace", "name"})
)

var (
	cloudExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "cloud_token_expiration_timestamp_seconds",
		Help:      "When the access token in a CloudAuthorization's Secret expires, as a Unix timestamp.",
	}, []string{"namespace", "name"})

	cloudAuthorized = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "cloud_authorized",
		Help:      "1 when the operator holds a usable refresh token for a CloudAuthorization, else 0 (consent needed).",
	}, []string{"namespace", "name"})

	cloudReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "cloud_ready",
		Help:      "1 when a CloudAuthorization's Secret holds an access token that has not expired, else 0.",
	}, []string{"namespace", "name"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(UpstreamRequests, appExpiry, appRenewal, appReady, M2MLogins, M2MKeepAlives, sessionReady,
		cloudExpiry, cloudAuthorized, cloudReady)
}

// SetCloud records a CloudAuthorization's state. A zero expiry leaves its series out.
func SetCloud(ns, name string, authorized, ready bool, expires time.Time) {
	setTime(cloudExpiry, ns, name, expires)
	cloudAuthorized.WithLabelValues(ns, name).Set(boolValue(authorized))
	cloudReady.WithLabelValues(ns, name).Set(boolValue(ready))
}

// ForgetCloud deletes a CloudAuthorization's series.
func ForgetCloud(ns, name string) { forget(ns, name, cloudExpiry, cloudAuthorized, cloudReady) }

// SetSession records an M2MSession's readiness.
func SetSession(ns, name string, ready bool) {
	sessionReady.WithLabelValues(ns, name).Set(boolValue(ready))
}

// ForgetSession deletes an M2MSession's series.
func ForgetSession(ns, name string) { sessionReady.DeleteLabelValues(ns, name) }

// Observer returns the function the upstream clients call once per request.
func Observer(api string) func(endpoint, code string) {
	return func(endpoint, code string) { UpstreamRequests.WithLabelValues(api, endpoint, code).Inc() }
}

// SetApp records a ThingSpaceApp's state. Zero times leave their series out.
func SetApp(ns, name string, ready bool, expires, renewal time.Time) {
	setTime(appExpiry, ns, name, expires)
	setTime(appRenewal, ns, name, renewal)
	appReady.WithLabelValues(ns, name).Set(boolValue(ready))
}

// ForgetApp deletes a ThingSpaceApp's series.
func ForgetApp(ns, name string) { forget(ns, name, appExpiry, appRenewal, appReady) }

func forget(ns, name string, vs ...*prometheus.GaugeVec) {
	for _, v := range vs {
		v.DeleteLabelValues(ns, name)
	}
}

func setTime(v *prometheus.GaugeVec, ns, name string, t time.Time) {
	if t.IsZero() {
		v.DeleteLabelValues(ns, name)
		return
	}
	v.WithLabelValues(ns, name).Set(float64(t.Unix()))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
