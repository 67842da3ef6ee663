package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// objectLabels are the labels of every per-object series. A cluster-scoped kind (ClusterThingSpaceApp,
// ClusterM2MSession) shares its namespaced kind's series with namespace="": a namespaced object always
// has a namespace, so the two never collide.
var objectLabels = []string{"namespace", "name"}

// readyConditions are the values of the ready_status series' condition label, one series each, as
// cert-manager's certmanager_certificate_ready_status: exactly one of them is 1.
var readyConditions = []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown}

// State is what a controller knows of one credential after a pass.
type State struct {
	// Ready is the Ready condition's status; empty (no condition yet) counts as Unknown.
	Ready metav1.ConditionStatus
	// Expires is when the credential in the Secret stops working; zero: none held.
	Expires time.Time
	// Renewal is the next planned upstream call for it (status.renewalTime, an M2MSession's
	// nextKeepAliveTime); zero: none planned.
	Renewal time.Time
	// Retrying says Renewal is a retry slot after failed attempts. The renewal series then keeps the
	// planned renewal that failed (the alert rules measure how far past it the credential is); a process
	// that never saw the plan exports the retry slot.
	Retrying bool
}

// kind is the expiry, renewal and ready series of one kind, plus any series of its own.
type kind struct {
	expiry, renewal, ready *prometheus.GaugeVec
	extra                  []*prometheus.GaugeVec // deleted with the object too

	mu      sync.Mutex
	planned map[[2]string]time.Time // the renewal exported per object, kept while retrying
}

// newKind defines prefix_expiration_timestamp_seconds, prefix_renewal_timestamp_seconds and
// readyPrefix_ready_status; what names the credential in the help texts.
func newKind(prefix, readyPrefix, what string) *kind {
	return &kind{
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      prefix + "_expiration_timestamp_seconds",
			Help:      "When the " + what + " in the Secret expires, as a Unix timestamp.",
		}, objectLabels),
		renewal: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      prefix + "_renewal_timestamp_seconds",
			Help:      "When the operator plans to renew the " + what + ", as a Unix timestamp (while retrying, the planned renewal that failed).",
		}, objectLabels),
		ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      readyPrefix + "_ready_status",
			Help:      "The Ready condition of the object holding the " + what + ": 1 on the series of its status (True, False or Unknown), 0 on the others.",
		}, []string{"namespace", "name", "condition"}),
		planned: map[[2]string]time.Time{},
	}
}

func (k *kind) collectors() []prometheus.Collector {
	cs := []prometheus.Collector{k.expiry, k.renewal, k.ready}
	for _, e := range k.extra {
		cs = append(cs, e)
	}
	return cs
}

// set records an object's state.
func (k *kind) set(ns, name string, s State) {
	setTime(k.expiry, ns, name, s.Expires)
	id := [2]string{ns, name}
	k.mu.Lock()
	renewal := s.Renewal
	if prev, ok := k.planned[id]; s.Retrying && ok {
		renewal = prev
	}
	if renewal.IsZero() {
		delete(k.planned, id)
	} else {
		k.planned[id] = renewal
	}
	k.mu.Unlock()
	setTime(k.renewal, ns, name, renewal)
	ready := s.Ready
	if ready == "" {
		ready = metav1.ConditionUnknown
	}
	for _, c := range readyConditions {
		k.ready.WithLabelValues(ns, name, string(c)).Set(boolValue(c == ready))
	}
}

// forget deletes every series of the object.
func (k *kind) forget(ns, name string) {
	k.mu.Lock()
	delete(k.planned, [2]string{ns, name})
	k.mu.Unlock()
	match := prometheus.Labels{"namespace": ns, "name": name}
	k.ready.DeletePartialMatch(match)
	for _, v := range append([]*prometheus.GaugeVec{k.expiry, k.renewal}, k.extra...) {
		v.DeletePartialMatch(match)
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
