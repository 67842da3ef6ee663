package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A scrape that drains its channel slowly must not hold up the reconciles setting series meanwhile
// (make bench at 10,000 apps: every worker waited in set behind a starved scrape).
func TestSetIsNotBlockedByASlowCollect(t *testing.T) {
	g := newObjectGauge("test_collect_object", "test")
	r := newReadyGauge("test_collect_ready", "test")
	for _, n := range []string{"a", "b", "c"} {
		g.set("ns", n, 1)
		r.set("ns", n, metav1.ConditionTrue)
	}
	for _, c := range []struct {
		name    string
		collect func(chan<- prometheus.Metric)
		set     func()
	}{
		{"objectGauge", g.Collect, func() { g.set("ns", "d", 2) }},
		{"readyGauge", r.Collect, func() { r.set("ns", "d", metav1.ConditionFalse) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ch := make(chan prometheus.Metric) // nobody reads until the set is done
			collected := make(chan struct{})
			go func() { c.collect(ch); close(collected) }()
			time.Sleep(50 * time.Millisecond) // the collect is blocked on its first send
			done := make(chan struct{})
			go func() { c.set(); close(done) }()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				t.Error("set waited for the collect to be drained")
			}
			for {
				select {
				case <-ch:
				case <-collected:
					return
				}
			}
		})
	}
}
