package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyTimeout bounds one readiness check (the kubelet's probe timeout defaults to 1 s).
const readyTimeout = 900 * time.Millisecond

// HealthHandler serves /healthz (the process serves), /readyz (ready returns nil: a valid
// credential is held) and /metrics (gatherer). Nothing here carries a credential, so it may
// listen on the pod IP, where the kubelet's probes and Prometheus reach it.
func HealthHandler(ready func(context.Context) error, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := ready(ctx); err != nil {
			// A fixed text: the reason is in the proxy's log, once per change.
			http.Error(w, "not ready: no valid credential held", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}
