package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Per-object gauges held as plain values and turned into samples only at scrape time. A GaugeVec keeps
// a child per label set (its label pairs, a hash, a desc): about 350 bytes a series, five or more
// series an object, 17 MiB at 10,000 ThingSpaceApps (make bench's heap profile). Here an object costs
// one map entry per family; the exposition is the same.

// objectKey is an object's namespace and name ("" namespace: a cluster-scoped object).
type objectKey [2]string

// objectGauge is a gauge family with the labels namespace and name.
type objectGauge struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	v    map[objectKey]float64
}

func newObjectGauge(name, help string) *objectGauge {
	return &objectGauge{desc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, objectLabels, nil),
		v: map[objectKey]float64{}}
}

func (g *objectGauge) set(ns, name string, v float64) {
	g.mu.Lock()
	g.v[objectKey{ns, name}] = v
	g.mu.Unlock()
}

func (g *objectGauge) delete(ns, name string) {
	g.mu.Lock()
	delete(g.v, objectKey{ns, name})
	g.mu.Unlock()
}

// value returns the object's sample, if it has one (tests).
func (g *objectGauge) value(ns, name string) (float64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	v, ok := g.v[objectKey{ns, name}]
	return v, ok
}

func (g *objectGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect sends a copy taken under the lock: the registry drains ch as slowly as the scrape goes (under
// CPU starvation, many seconds for 10,000 objects), and a lock held across the sends stalled every
// reconcile's set behind it (make bench at 10,000 apps: all 50 workers of the kind waiting in set while
// 89 scrapes queued on the lock, each holding its samples: the RSS went from 180 to 600 MiB).
func (g *objectGauge) Collect(ch chan<- prometheus.Metric) {
	type sample struct {
		k objectKey
		v float64
	}
	g.mu.Lock()
	snap := make([]sample, 0, len(g.v))
	for k, v := range g.v {
		snap = append(snap, sample{k, v})
	}
	g.mu.Unlock()
	for _, s := range snap {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, s.v, s.k[0], s.k[1])
	}
}

// readyGauge is a ready_status family: per object one series per condition status, 1 on the object's.
type readyGauge struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	v    map[objectKey]metav1.ConditionStatus
}

func newReadyGauge(name, help string) *readyGauge {
	return &readyGauge{desc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, []string{"namespace", "name", "condition"}, nil),
		v: map[objectKey]metav1.ConditionStatus{}}
}

func (g *readyGauge) set(ns, name string, s metav1.ConditionStatus) {
	g.mu.Lock()
	g.v[objectKey{ns, name}] = s
	g.mu.Unlock()
}

func (g *readyGauge) delete(ns, name string) {
	g.mu.Lock()
	delete(g.v, objectKey{ns, name})
	g.mu.Unlock()
}

func (g *readyGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect sends a copy taken under the lock, as objectGauge's does.
func (g *readyGauge) Collect(ch chan<- prometheus.Metric) {
	type sample struct {
		k objectKey
		s metav1.ConditionStatus
	}
	g.mu.Lock()
	snap := make([]sample, 0, len(g.v))
	for k, s := range g.v {
		snap = append(snap, sample{k, s})
	}
	g.mu.Unlock()
	for _, o := range snap {
		for _, c := range readyConditions {
			ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, boolValue(c == o.s), o.k[0], o.k[1], string(c))
		}
	}
}
