# Argo CD health checks: resource_customizations/thingspace.credops.io/<Kind>/health.lua, shipped as
# the argocd-cm snippet config/argocd/argocd-cm-patch.yaml (test/argocd fails when the two drift).

.PHONY: argocd-cm
argocd-cm: ## Regenerate config/argocd/argocd-cm-patch.yaml from the health.lua scripts.
	go run ./test/argocd/gen

.PHONY: test-argocd
test-argocd: ## Run the Argo CD health checks in gopher-lua against their testdata.
	go test ./test/argocd/... -count=1
