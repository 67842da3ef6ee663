package proxy

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/utils/clock"
)

// Response sources: who chose the status the client got.
const (
	SourceUpstream = "upstream" // the upstream's answer, passed through
	SourceProxy    = "proxy"    // the proxy's own: refused, no credential, upstream unreachable
)

// Metrics are the sidecar's Prometheus series, on a registry of their own (served by
// HealthHandler). Labels are bounded: a code class and a source, never a path or a credential.
type Metrics struct {
	Registry *prometheus.Registry

	requests *prometheus.CounterVec
	refused  *prometheus.CounterVec
	rejected *prometheus.CounterVec
	retries  prometheus.Counter
	waits    *prometheus.CounterVec
	waitTime prometheus.Histogram

	changes prometheus.Counter
	expiry  prometheus.Gauge

	clock    clock.PassiveClock
	mu       sync.Mutex
	heldFrom time.Time // when the source first saw the credential held; zero: none
}

// NewMetrics registers the series (and the Go and process collectors) on a new registry. clk
// dates the credential's age; nil means the real clock.
func NewMetrics(clk clock.PassiveClock) *Metrics {
	if clk == nil {
		clk = clock.RealClock{}
	}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		clock:    clk,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thingspace_proxy_requests_total",
			Help: "Requests answered, by response code class (2xx…5xx) and source (upstream: its answer passed through; proxy: the proxy's own answer).",
		}, []string{"code", "source"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thingspace_proxy_refused_requests_total",
			Help: "Requests the proxy refused without forwarding them, by reason (connect, session_management).",
		}, []string{"reason"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thingspace_proxy_credential_rejections_total",
			Help: "Answers in which the upstream rejected the credential, by reason (the library's: gateway_900901, m2m_session_token).",
		}, []string{"reason"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "thingspace_proxy_retries_total",
			Help: "Rejected requests the credentials transport sent again, once, with a newer credential.",
		}),
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thingspace_proxy_credential_waits_total",
			Help: "Times the credentials transport waited for a newer credential, by outcome (newer: one came; timeout: none within the bound).",
		}, []string{"outcome"}),
		waitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "thingspace_proxy_credential_wait_seconds",
			Help:    "How long the credentials transport waited for a newer credential.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30},
		}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "thingspace_proxy_credential_changes_total",
			Help: "Times the credential the proxy holds changed (a new version from the source).",
		}),
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "thingspace_proxy_credential_expiry_timestamp_seconds",
			Help: "When the credential the proxy holds expires (Unix seconds); 0 while it holds none.",
		}),
	}
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "thingspace_proxy_credential_age_seconds",
		Help: "Seconds since the credential source first saw the credential the proxy holds; 0 while it holds none.",
	}, m.age)
	m.Registry.MustRegister(m.requests, m.refused, m.rejected, m.retries, m.waits, m.waitTime, m.changes, m.expiry, age,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Zero series for the usual label values, so rate() and alerts see them from the start.
	for _, c := range []string{"2xx", "4xx", "5xx"} {
		m.requests.WithLabelValues(c, SourceUpstream)
	}
	m.requests.WithLabelValues("5xx", SourceProxy)
	m.refused.WithLabelValues("connect")
	m.refused.WithLabelValues("session_management")
	return m
}

// codeClass maps a status to its class label ("2xx"); anything outside 100..599 is "other".
func codeClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return string(rune('0'+code/100)) + "xx"
}

func (m *Metrics) request(code int, source string) {
	m.requests.WithLabelValues(codeClass(code), source).Inc()
}

func (m *Metrics) refuse(reason string) { m.refused.WithLabelValues(reason).Inc() }

// Rejected counts one answer rejecting the credential, by the library's reason.
func (m *Metrics) Rejected(reason string) { m.rejected.WithLabelValues(reason).Inc() }

// Retried counts one retry with a newer credential.
func (m *Metrics) Retried() { m.retries.Inc() }

// Waited counts one wait for a newer credential and how long it took.
func (m *Metrics) Waited(d time.Duration, gotNewer bool) {
	outcome := "timeout"
	if gotNewer {
		outcome = "newer"
	}
	m.waits.WithLabelValues(outcome).Inc()
	m.waitTime.Observe(d.Seconds())
}

// Held records a newly held credential: when the source first saw it (its age starts there) and
// when it expires.
func (m *Metrics) Held(observedAt, expiresAt time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.heldFrom = observedAt
	m.changes.Inc()
	m.expiry.Set(float64(expiresAt.UnixMilli()) / 1e3)
}

// ReportValidity adds thingspace_proxy_credential_valid, 1 while valid() says a valid credential is
// held (asked at each scrape).
func (m *Metrics) ReportValidity(valid func() bool) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "thingspace_proxy_credential_valid",
		Help: "1 while the proxy holds a credential that has not expired (what /readyz answers), else 0.",
	}, func() float64 {
		if valid() {
			return 1
		}
		return 0
	}))
}

func (m *Metrics) age() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.heldFrom.IsZero() {
		return 0
	}
	return m.clock.Since(m.heldFrom).Seconds()
}
