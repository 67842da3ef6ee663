// Package gitops tests what GitOps tools see of the operator's objects, on a real control plane with
// the real controllers and the simulator: the kstatus verdict (sigs.k8s.io/cli-utils/pkg/kstatus, what
// Flux's health checks compute) in every state, the Flux example under examples/flux, and that a
// server-side-apply diff of the samples (what Argo CD's server-side diff runs) shows nothing the
// operator changed.
package gitops
