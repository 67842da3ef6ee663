# thingspace-operator. `make help` lists the targets.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_TOOLS_VERSION ?= v0.21.0
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
IMG ?= thingspace-operator:dev
SIM_IMG ?= thingspace-sim:dev
PROXY_IMG ?= thingspace-proxy:dev

include hack/envtest.mk
include hack/deploy.mk
include hack/run.mk
include hack/lint.mk
include hack/helm.mk
include hack/cluster.mk
include hack/image.mk
include hack/node.mk
include hack/workloads.mk
include hack/plugin.mk
include hack/argocd.mk
include hack/monitoring.mk
include hack/gitops.mk
include hack/chaos.mk

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC from markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	go run ./hack/rbacsplit # config/watch-namespaces/rbac: role.yaml split into a Role and a ClusterRole
	$(chart-copies)
	$(monitoring-copies)

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## Run gofmt over the tree.
	gofmt -l -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: build
build: manifests generate ## Build the manager and simulator binaries into bin/.
	go build -o $(LOCALBIN)/manager ./cmd/manager
	go build -o $(LOCALBIN)/thingspace-sim ./cmd/thingspace-sim

.PHONY: test
test: manifests generate vet lint envtest helm promtool $(KUSTOMIZE) ## Run unit, envtest integration, chart, alert-rule and e2e tests (builds the control plane binaries, helm, promtool and kustomize when absent).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) HELM=$(HELM) PROMTOOL=$(PROMTOOL) KUSTOMIZE=$(KUSTOMIZE) go test ./... -count=1 -timeout 30m

.PHONY: run
run: manifests generate ## Run the manager against the cluster in ~/.kube/config (install the CRDs first: make install); metrics on plain http://:8080.
	go run ./cmd/manager --metrics-bind-address=:8080 --metrics-secure=false --health-probe-bind-address=:8081 $(ARGS)

.PHONY: sim
sim: ## Run the ThingSpace simulator on 127.0.0.1:8088 with app demo-key:demo-secret.
	go run ./cmd/thingspace-sim --listen 127.0.0.1:8088 --app demo-key:demo-secret $(ARGS)
