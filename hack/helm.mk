# Helm (the chart in charts/thingspace-operator and its lint). Included from the main Makefile.

LOCALBIN ?= $(shell pwd)/bin
HELM_VERSION ?= v3.22.0
# Versioned name, so bumping the version installs the new one instead of reusing an older binary;
# bin/helm links to it for people and scripts (the node tests call bin/helm).
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
# The Kubernetes minor of the client-go helm $(HELM_VERSION) builds with (k8s.io/client-go v0.37). helm's
# own Makefile sets these with -ldflags; a plain go install would report version "v3.22" and default
# `helm template`'s .Capabilities.KubeVersion (and lint's deprecation checks) to v1.20.
HELM_K8S_MINOR ?= 37
HELM_LDFLAGS := -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_K8S_MINOR) \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_K8S_MINOR)
CHART_DIR ?= charts/thingspace-operator

.PHONY: helm
helm: $(HELM) ## Install helm into bin/ (go install from the module proxy).
$(HELM): | $(LOCALBIN)
	rm -f $(LOCALBIN)/helm # the link to an older version: go install must not write through it
	GOBIN=$(LOCALBIN) go install -ldflags '$(HELM_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/helm $@
	ln -sfn $(notdir $@) $(LOCALBIN)/helm

.PHONY: helm-lint
helm-lint: $(HELM) ## Lint the chart (default values, strict).
	$(HELM) lint --strict $(CHART_DIR)

# The chart's copies of the generated CRDs and of config/rbac's rules (`make manifests` runs this after
# controller-gen), which its templates read with .Files: one source for kustomize and Helm, and
# test/chart fails when they drift. Removed first, so a CRD deleted from config/ leaves the chart too.
define chart-copies
	rm -f $(CHART_DIR)/files/crds/*.yaml $(CHART_DIR)/files/rbac/*.yaml $(CHART_DIR)/files/watch-namespaces/*.yaml
	mkdir -p $(CHART_DIR)/files/watch-namespaces
	cp config/watch-namespaces/rbac/manager_role.yaml config/watch-namespaces/rbac/manager_cluster_role.yaml $(CHART_DIR)/files/watch-namespaces/
	cp config/crd/bases/*.yaml $(CHART_DIR)/files/crds/
	cp config/rbac/role.yaml config/rbac/leader_election_role.yaml config/rbac/metrics_reader_role.yaml config/rbac/*_editor_role.yaml config/rbac/*_viewer_role.yaml $(CHART_DIR)/files/rbac/
endef
