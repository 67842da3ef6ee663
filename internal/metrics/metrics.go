// Package metrics defines the operator's Prometheus series and registers them with controller-runtime's
// registry, which the manager serves on its metrics endpoint. Names follow cert-manager's
// (certmanager_certificate_expiration_timestamp_seconds, ..._renewal_timestamp_seconds,
// ..._ready_status{condition}), one family per kind, so the alert rules in config/prometheus read the
// same way for every kind. Per-object series carry only namespace and name (never a secret, never a
// username) and are deleted when the object goes, so a cluster with churn does not accumulate dead series.
//
// The setters take a namespace and a name: a controller of a cluster-scoped kind (ClusterThingSpaceApp,
// ClusterM2MSession) calls its namespaced kind's setter with namespace "".
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

const namespace = "thingspace"

// UpstreamRequests counts calls to Verizon by API, endpoint and HTTP status ("error" for transport
// failures). Throttling shows as code 429 or 503.
var UpstreamRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: namespace,
	Name:      "upstream_requests_total",
	Help:      "Requests sent to Verizon APIs, by API, endpoint and HTTP status code (\"error\" when no response arrived).",
}, []string{"api", "endpoint", "code"})

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
)

// The kinds' per-object series.
var (
	app     = newKind("app_token", "app", "ThingSpaceApp's app token")
	session = newKind("m2m_session", "m2m_session", "M2MSession's UWS session")
	cloud   = newKind("cloud_token", "cloud", "CloudAuthorization's access token")

	sessionKeepAlive = gauge("m2m_session_last_keepalive_timestamp_seconds",
		"When an M2MSession's last successful keep-alive call was, as a Unix timestamp.")
	cloudAuthorized = gauge("cloud_authorized",
		"1 when the operator holds a usable refresh token for a CloudAuthorization, else 0 (consent needed).")
	cloudRefreshExpiry = gauge("cloud_refresh_token_expiration_timestamp_seconds",
		"When a CloudAuthorization's refresh token dies unused (14 days after its last refresh), as a Unix timestamp.")
	cloudKeepAliveDeadline = gauge("cloud_refresh_token_keepalive_deadline_timestamp_seconds",
		"By when a CloudAuthorization's refresh token must be refreshed to stay safe (spec.refreshTokenKeepAlive after the last refresh, at the latest a day before it dies), as a Unix timestamp.")

	logins = newLoginFailures()
)

func gauge(name, help string) *objectGauge { return newObjectGauge(name, help) }

func init() {
	session.expiry = newObjectGauge("m2m_session_expiration_timestamp_seconds",
		"When the UWS session in an M2MSession's Secret idles out (20 minutes after its last login or keep-alive), as a Unix timestamp.")
	session.extra = append(session.extra, sessionKeepAlive)
	cloud.extra = append(cloud.extra, cloudAuthorized, cloudRefreshExpiry, cloudKeepAliveDeadline)
	ctrlmetrics.Registry.MustRegister(UpstreamRequests, M2MLogins, M2MKeepAlives, logins)
	for _, k := range []*kind{app, session, cloud} {
		ctrlmetrics.Registry.MustRegister(k.collectors()...)
	}
}

// Observer returns the function the upstream clients call once per request.
func Observer(api string) func(endpoint, code string) {
	return func(endpoint, code string) { UpstreamRequests.WithLabelValues(api, endpoint, code).Inc() }
}

// SetApp records a ThingSpaceApp's (or, with ns "", a ClusterThingSpaceApp's) state.
func SetApp(ns, name string, s State) { app.set(ns, name, s) }

// ForgetApp deletes a ThingSpaceApp's series.
func ForgetApp(ns, name string) { app.forget(ns, name) }

// Session is an M2MSession's state: the session's expiry is its idle timeout after the last use.
type Session struct {
	State
	// LastKeepAlive is the last successful keep-alive call; zero: none yet.
	LastKeepAlive time.Time
}

// SetSession records an M2MSession's (or, with ns "", a ClusterM2MSession's) state.
func SetSession(ns, name string, s Session) {
	session.set(ns, name, s.State)
	setTime(sessionKeepAlive, ns, name, s.LastKeepAlive)
}

// ForgetSession deletes an M2MSession's series, its login failures included.
func ForgetSession(ns, name string) {
	session.forget(ns, name)
	logins.forget(ns, name)
}

// Cloud is a CloudAuthorization's state.
type Cloud struct {
	State
	// Authorized: the operator holds a usable refresh token.
	Authorized bool
	// RefreshTokenExpires is when the refresh token dies unused; KeepAliveDeadline when it must be
	// refreshed by to stay safe (policy.CloudKeepAlive's deadline and riskAt). Zero: unknown.
	RefreshTokenExpires, KeepAliveDeadline time.Time
}

// SetCloud records a CloudAuthorization's state.
func SetCloud(ns, name string, s Cloud) {
	cloud.set(ns, name, s.State)
	cloudAuthorized.set(ns, name, boolValue(s.Authorized))
	setTime(cloudRefreshExpiry, ns, name, s.RefreshTokenExpires)
	setTime(cloudKeepAliveDeadline, ns, name, s.KeepAliveDeadline)
}

// ForgetCloud deletes a CloudAuthorization's series.
func ForgetCloud(ns, name string) { cloud.forget(ns, name) }
