package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// AppHandovers counts the handovers of ThingSpaceApps and ClusterThingSpaceApps with a standby key set
// by result: handed_over (the other key set's token published), deferred (that key's token of the hour
// would not have outlived the published one), failed (transient), rejected (the key set was refused).
var AppHandovers = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: namespace,
	Name:      "app_handovers_total",
	Help:      "Handovers to the other key set of apps with a standby key set, by result (handed_over, deferred, failed, rejected).",
}, []string{"result"})

func init() { ctrlmetrics.Registry.MustRegister(AppHandovers) }
