# Tests on a real node: test/node (build tag `node`) against the cluster of hack/cluster.mk, with the
# manager installed as a pod from the image of hack/image.mk by the chart (bin/helm) and by kustomize.
# Included from the main Makefile, which defines LOCALBIN, manifests and generate; KUSTOMIZE comes from
# hack/deploy.mk, HELM from hack/helm.mk, the cluster and image targets from their fragments.

# Rotations measured at the kubelet's stock syncFrequency (1m, so up to ~90 s each); 0 skips that step.
NODE_STOCK_ROTATIONS ?= 2
# Rotations measured at syncFrequency 1s.
NODE_ROTATIONS ?= 3
# true leaves the node up after the tests (to look around; `make cluster-down` removes it).
NODE_KEEP ?= false
NODE_TEST_ARGS ?= -test.v
NODE_TEST_BIN := $(LOCALBIN)/node.test

.PHONY: test-node
test-node: manifests generate helm $(KUSTOMIZE) ## Real-node tests (Linux, root): cluster up, image loaded, Helm and kustomize installs, workload, handover, upgrade; cluster down.
	go test -c -tags node -o $(NODE_TEST_BIN) ./test/node
	$(MAKE) cluster
	@status=0; \
	$(MAKE) image image-workload || status=$$?; \
	if [ $$status -eq 0 ]; then \
		(cd test/node && ../../hack/cluster/in-node.sh env HELM=$(HELM) KUSTOMIZE=$(KUSTOMIZE) \
			NODE_ROTATIONS=$(NODE_ROTATIONS) NODE_STOCK_ROTATIONS=$(NODE_STOCK_ROTATIONS) \
			$(NODE_TEST_BIN) -test.count=1 -test.timeout=50m $(NODE_TEST_ARGS)) || status=$$?; \
	fi; \
	if [ "$(NODE_KEEP)" != true ]; then $(MAKE) cluster-down || status=$${status:-1}; fi; \
	exit $$status
