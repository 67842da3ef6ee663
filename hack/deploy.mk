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

# What undeploy drains first: config/default's manager Deployment and its pods (test/chart checks these
# against config/default and config/manager). The wait is longer than the pods'
# terminationGracePeriodSeconds (100).
MANAGER_NAMESPACE ?= thingspace-operator-system
MANAGER_DEPLOYMENT ?= thingspace-operator-controller-manager
MANAGER_POD_SELECTOR ?= app.kubernetes.io/name=thingspace-operator,control-plane=controller-manager
DRAIN_TIMEOUT ?= 150s

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

# drain-manager scales the manager Deployment to 0 and waits until its pods are gone, before the rest of
# config/default goes: a manager pod's graceful shutdown still stores in-flight upstream answers (a
# rotated refresh token, a reset password), which fails as Forbidden once its RBAC is deleted, and the
# answer is lost. Scaled rather than deleted, so the delete of the whole build that follows still finds
# the Deployment (IGNORE_NOT_FOUND=false fails on a missing object, here as there). kubectl wait
# --for=delete succeeds at once when no pod matches.
define drain-manager
	@echo "Scaling the manager to 0, waiting up to $(DRAIN_TIMEOUT) for its pods to store in-flight answers and exit"
	@if [ "$(IGNORE_NOT_FOUND)" != true ] || $(KUBECTL) get deployment $(MANAGER_DEPLOYMENT) -n $(MANAGER_NAMESPACE) >/dev/null 2>&1; then \
		$(KUBECTL) scale deployment $(MANAGER_DEPLOYMENT) -n $(MANAGER_NAMESPACE) --replicas=0; \
	fi
	$(KUBECTL) wait --for=delete pod -l $(MANAGER_POD_SELECTOR) -n $(MANAGER_NAMESPACE) --timeout=$(DRAIN_TIMEOUT)
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
undeploy: $(KUSTOMIZE) ## Delete the custom resources (finalized by the operator), the manager (waiting for its pods), then everything deploy created.
	$(delete-thingspace-resources)
	$(drain-manager)
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found=$(IGNORE_NOT_FOUND) -f -

.PHONY: deploy-sim
deploy-sim: manifests $(KUSTOMIZE) ## Demo: deploy the operator (IMG) with --allow-insecure-endpoints plus the simulator (SIM_IMG).
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	cd config/sim && $(KUSTOMIZE) edit set image thingspace-sim=$(SIM_IMG)
	$(KUSTOMIZE) build config/sim-demo | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy-sim
undeploy-sim: $(KUSTOMIZE) ## Undo deploy-sim (custom resources first, so finalizers run; then the manager, waiting for its pods).
	$(delete-thingspace-resources)
	$(drain-manager)
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
