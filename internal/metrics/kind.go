package metrics

import (
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
	expiry, renewal *objectGauge
	ready           *readyGauge
	extra           []*objectGauge // deleted with the object too
}

// newKind defines prefix_expiration_timestamp_seconds, prefix_renewal_timestamp_seconds and
// readyPrefix_ready_status; what names the credential in the help texts.
func newKind(prefix, readyPrefix, what string) *kind {
	return &kind{
		expiry:  newObjectGauge(prefix+"_expiration_timestamp_seconds", "When the "+what+" in the Secret expires, as a Unix timestamp."),
		renewal: newObjectGauge(prefix+"_renewal_timestamp_seconds", "When the operator plans to renew the "+what+", as a Unix timestamp (while retrying, the planned renewal that failed)."),
		ready:   newReadyGauge(readyPrefix+"_ready_status", "The Ready condition of the object holding the "+what+": 1 on the series of its status (True, False or Unknown), 0 on the others."),
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
	// While retrying, the planned renewal that failed stays exported.
	if _, planned := k.renewal.value(ns, name); !s.Retrying || !planned {
		setTime(k.renewal, ns, name, s.Renewal)
	}
	ready := s.Ready
	if ready == "" {
		ready = metav1.ConditionUnknown
	}
	k.ready.set(ns, name, ready)
}

// forget deletes every series of the object.
func (k *kind) forget(ns, name string) {
	k.ready.delete(ns, name)
	for _, g := range append([]*objectGauge{k.expiry, k.renewal}, k.extra...) {
		g.delete(ns, name)
	}
}

func setTime(g *objectGauge, ns, name string, t time.Time) {
	if t.IsZero() {
		g.delete(ns, name)
		return
	}
	g.set(ns, name, float64(t.Unix()))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
