# What GitOps tools see: kstatus verdicts (Flux) on the live objects, the Flux example, and a
# server-side-apply diff of the samples (Argo CD) showing nothing the operator changed.

.PHONY: test-gitops
test-gitops: envtest ## Run test/gitops: kstatus.Compute per state, examples/flux, the SSA no-drift check (envtest + simulator).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test ./test/gitops/... -count=1
