package main

import (
	"crypto/tls"

	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// The metrics filter asks the API server about every scrape.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// metricsOptions is how the manager serves /metrics at addr, as kubebuilder v4 scaffolds it. Secure:
// HTTPS (a self-signed certificate controller-runtime generates at start), every request authenticated
// with a TokenReview and authorized with a SubjectAccessReview (GET on the non-resource URL /metrics,
// which the metrics-reader ClusterRole grants); HTTP/2 is off (CVE-2023-44487/39325, rapid reset).
// Not secure (--metrics-secure=false, local runs): plain HTTP, no authentication.
func metricsOptions(addr string, secure bool) metricsserver.Options {
	o := metricsserver.Options{BindAddress: addr, SecureServing: secure}
	if secure {
		o.FilterProvider = filters.WithAuthenticationAndAuthorization
		o.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	return o
}
