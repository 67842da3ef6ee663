# Deployment targets: kustomize, install/uninstall (CRDs), deploy/undeploy (CRDs, RBAC and the manager),
# the simulator demo, the container image and a single-file installer.
# Included by the main Makefile, which defines LOCALBIN, the $(LOCALBIN) rule, IMG and `manifests`.

KUSTOMIZE ?= $(LOCALBIN)/kustomize
KUSTOMIZE_VERSION ?= v5.8.2
KUBECTL ?= kubectl
CONTAINER_TOOL ?= docker
# Set to true to make uninstall/undeploy ignore objects that are already gone.
IGNORE_NOT_FOUND ?= false
# How long uninstall/undeploy wait for the operator to finalize the custom resources (revokeOnDelete).
DELETE_TIMEOUT ?= 2m

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Install kustomize into bin/.
$(KUSTOMIZE): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

# delete-thingspace-resources deletes every custom resource in the `thingspace` category (all CRDs of
# this operator carry it) and waits, so the running operator can clear its finalizers (revokeOnDelete)
# before the CRDs or the operator itself go away. Without this, deleting a CRD whose objects still
# carry a finalizer hangs once the operator is gone. Skipped when the CRDs are not installed.
define delete-thingspace-resources
	@if [ -n "$$($(KUBECTL) api-resources --categories=thingspace -o name 2>/dev/null)" ]; then \
		echo "Deleting all thingspace custom resources (waiting up to $(DELETE_TIMEOUT) for finalizers)"; \
		$(KUBECTL) delete thingspace --all --all-namespaces --wait --timeout=$(DELETE_TIMEOUT); \
	fi
endef

.PHONY: install
install: manifests $(KUSTOMIZE) ## Install the CRDs into the cluster of the current kubeconfig context.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: manifests $(KUSTOMIZE) ## Delete the custom resources (finalized by the running operator), then the CRDs.
	$(delete-thingspace-resources)
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found=$(IGNORE_NOT_FOUND) -f -

.PHONY: deploy
deploy: manifests $(KUSTOMIZE) ## Deploy CRDs, RBAC and the manager (image IMG) to the cluster.
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: $(KUSTOMIZE) ## Delete the custom resources (finalized by the operator), then everything deploy created.
	$(delete-thingspace-resources)
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found=$(IGNORE_NOT_FOUND) -f -

.PHONY: deploy-sim
deploy-sim: manifests $(KUSTOMIZE) ## Demo: deploy the operator (IMG) with --allow-insecure-endpoints plus the simulator (SIM_IMG).
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	cd config/sim && $(KUSTOMIZE) edit set image thingspace-sim=$(SIM_IMG)
	$(KUSTOMIZE) build config/sim-demo | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy-sim
undeploy-sim: $(KUSTOMIZE) ## Undo deploy-sim (custom resources first, so finalizers run).
	$(delete-thingspace-resources)
	$(KUSTOMIZE) build config/sim-demo | $(KUBECTL) delete --ignore-not-found=$(IGNORE_NOT_FOUND) -f -

.PHONY: docker-build
docker-build: ## Build the manager image IMG with Docker (Dockerfile target manager).
	$(CONTAINER_TOOL) build --target manager -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the image IMG.
	$(CONTAINER_TOOL) push $(IMG)

.PHONY: build-installer
build-installer: manifests $(KUSTOMIZE) ## Write dist/install.yaml (CRDs, RBAC, manager with image IMG).
	mkdir -p dist
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default > dist/install.yaml
