# Argo CD health checks: resource_customizations/thingspace.credops.io/<Kind>/health.lua, shipped as
# the argocd-cm snippet config/argocd/argocd-cm-patch.yaml (test/argocd fails when the two drift).

.PHONY: argocd-cm
argocd-cm: ## Regenerate config/argocd/argocd-cm-patch.yaml from the health.lua scripts.
	go run ./test/argocd/gen

.PHONY: test-argocd
test-argocd: envtest ## Run the Argo CD health checks in gopher-lua against their testdata and fresh captures.
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test ./test/argocd/... -count=1

.PHONY: argocd-capture
argocd-capture: envtest ## Re-capture the captured-*.yaml testdata from the real controllers (envtest + simulator).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) ARGOCD_CAPTURE=update go test ./test/argocd/capture -count=1 -run TestCapturedStatuses
