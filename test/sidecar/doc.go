// Package sidecar tests the token sidecar (cmd/thingspace-proxy, internal/proxy) against a real API
// server (envtest's kube-apiserver with RBAC, from KUBEBUILDER_ASSETS or bin/k8s): the example
// pods of examples/sidecar pass the API server's validation, and the example's Role is exactly enough
// for --secret: the sidecar, impersonating the example's ServiceAccount, reads and watches its one
// Secret (seeing an update through the API) and nothing else.
package sidecar
