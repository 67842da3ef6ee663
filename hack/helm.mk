# Helm (the chart in charts/thingspace-operator and its lint). Included from the main Makefile.

LOCALBIN ?= $(shell pwd)/bin
HELM_VERSION ?= v3.22.0
# Versioned name, so bumping the version installs the new one instead of reusing an older binary;
# bin/helm links to it for people and scripts (the node tests call bin/helm).
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
CHART_DIR ?= charts/thingspace-operator

.PHONY: helm
helm: $(HELM) ## Install helm into bin/ (go install from the module proxy).
$(HELM): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/helm $@
	ln -sfn $(notdir $@) $(LOCALBIN)/helm

.PHONY: helm-lint
helm-lint: $(HELM) ## Lint the chart (default values, strict).
	$(HELM) lint --strict $(CHART_DIR)

# The chart's copies of the generated CRDs and of config/rbac's rules (`make manifests` runs this after
# controller-gen), which its templates read with .Files: one source for kustomize and Helm, and
# test/chart fails when they drift. Removed first, so a CRD deleted from config/ leaves the chart too.
define chart-copies
	rm -f $(CHART_DIR)/files/crds/*.yaml $(CHART_DIR)/files/rbac/*.yaml
	cp config/crd/bases/*.yaml $(CHART_DIR)/files/crds/
	cp config/rbac/role.yaml config/rbac/leader_election_role.yaml config/rbac/*_editor_role.yaml config/rbac/*_viewer_role.yaml $(CHART_DIR)/files/rbac/
endef
