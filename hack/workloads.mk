# The workload proof on the real node (issue 11 §4; test/node TestWorkloads): the Go workload's image
# and `make bench-workloads`, which runs just that test and prints its table.
# Included from the main Makefile after hack/image.mk and hack/node.mk (IMAGES_DIR, IMAGE_BINDIR,
# IMAGE_ARCH, IMAGE_CA_CERTS, IMAGE_EPOCH; test-node).

WORKLOAD_IMG ?= thingspace-node-workload:dev
WORKLOAD_TAR = $(IMAGES_DIR)/thingspace-node-workload.tar
BENCH_WORKLOADS_LOG ?= $(LOCALBIN)/bench-workloads.log

.PHONY: image-workload
image-workload: image-ca-certs ## Build the node proof's Go workload image (test/node/workload, pkg/credentials) into bin/images; load it into the local node when it is up.
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) go build -trimpath -o $(IMAGE_BINDIR)/workload ./test/node/workload
	go run ./hack/image --binary $(IMAGE_BINDIR)/workload --entrypoint /workload --tag $(WORKLOAD_IMG) \
		--out $(WORKLOAD_TAR) --ca-certs $(IMAGE_CA_CERTS) --epoch $(IMAGE_EPOCH)
	@if [ -f "$(LAB)/admin.kubeconfig" ]; then hack/cluster/load-image.sh $(WORKLOAD_TAR); \
	else echo "image-workload: the node is not up: not loaded; the image is ready: $(WORKLOAD_TAR)"; fi

.PHONY: bench-workloads
bench-workloads: ## Real node (Linux, root): only the workload proof (TestWorkloads, ~15 min), then its table (log in bin/bench-workloads.log).
	@{ st=0; $(MAKE) test-node NODE_TEST_ARGS='-test.v -test.run ^TestWorkloads$$' 2>&1 || st=$$?; \
		echo $$st >$(BENCH_WORKLOADS_LOG).rc; } | tee $(BENCH_WORKLOADS_LOG); \
	status=$$(cat $(BENCH_WORKLOADS_LOG).rc); rm -f $(BENCH_WORKLOADS_LOG).rc; \
	echo; echo "Workload proof (bin/bench-workloads.log):"; grep -o 'MEASURED.*' $(BENCH_WORKLOADS_LOG) | sed 's/^MEASURED //'; \
	exit $$status
