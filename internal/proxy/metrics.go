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
	retries  *prometheus.CounterVec
	waits    *prometheus.CounterVec
	waitTime prometheus.Histogram

	changes prometheus.Counter
	expiry  prometheus.Gauge

	clock    clock.PassiveClock
	mu       sync.Mutex
	heldFrom time.Time // when the tracker first saw the credential it holds; zero: none
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
			Help: "Requests the proxy refused without forwarding them, by reason (connect, body_too_large).",
		}, []string{"reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thingspace_proxy_retries_total",
			Help: "Requests the credentials transport sent again after the upstream rejected the credential, by what rejected it (bearer: gateway fault 900901; session: an M2M SessionToken error).",
		}, []string{"reason"}),
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
		Help: "Seconds since the proxy first saw the credential it holds; 0 while it holds none.",
	}, m.age)
	m.Registry.MustRegister(m.requests, m.refused, m.retries, m.waits, m.waitTime, m.changes, m.expiry, age,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Zero series for the usual label values, so rate() and alerts see them from the start.
	for _, c := range []string{"2xx", "4xx", "5xx"} {
		m.requests.WithLabelValues(c, SourceUpstream)
	}
	m.requests.WithLabelValues("5xx", SourceProxy)
	for _, r := range []string{"bearer", "session"} {
		m.retries.WithLabelValues(r)
	}
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

// Retried counts one retry after the upstream rejected the credential ("bearer" or "session").
func (m *Metrics) Retried(reason string) { m.retries.WithLabelValues(reason).Inc() }

// Waited counts one wait for a newer credential and how long it took.
func (m *Metrics) Waited(d time.Duration, gotNewer bool) {
	outcome := "timeout"
	if gotNewer {
		outcome = "newer"
	}
	m.waits.WithLabelValues(outcome).Inc()
	m.waitTime.Observe(d.Seconds())
}

// Held records the credential now held: its expiry, and, when it changed, the time the change was
// seen (the credential's age starts there).
func (m *Metrics) Held(expiresAt time.Time, changed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if changed || m.heldFrom.IsZero() {
		m.heldFrom = m.clock.Now()
		m.changes.Inc()
	}
	m.expiry.Set(float64(expiresAt.UnixMilli()) / 1e3)
}

// Dropped records that no credential is held (none yet, or the one held expired).
func (m *Metrics) Dropped() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.heldFrom = time.Time{}
	m.expiry.Set(0)
}

func (m *Metrics) age() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.heldFrom.IsZero() {
		return 0
	}
	return m.clock.Since(m.heldFrom).Seconds()
}
