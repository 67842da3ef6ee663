# Container images built offline, without a Docker daemon (hack/image, go-containerregistry): the
# manager image IMG, the simulator image SIM_IMG and the token sidecar PROXY_IMG, each one static
# binary on an empty base (no shell), user 65532, written as docker-archive tars into bin/images.
# `make docker-build`, `docker-build-sim` and `docker-build-proxy` build the same images with Docker
# from the Dockerfile.
# Included by the main Makefile, which defines LOCALBIN, IMG, SIM_IMG and PROXY_IMG.

LAB ?= /tmp/tsop-lab
IMAGES_DIR ?= $(LOCALBIN)/images
IMAGE_ARCH ?= $(shell go env GOARCH)
IMAGE_CA_CERTS ?= /etc/ssl/certs/ca-certificates.crt
IMAGE_SOURCE ?= https://github.com/credops/thingspace-operator
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
IMAGE_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
# The commit's time is every file's mtime and the images' created time: a rebuild of one commit
# gives the same digests.
IMAGE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_BINDIR = $(IMAGES_DIR)/linux-$(IMAGE_ARCH)
IMAGE_TARS = $(IMAGES_DIR)/thingspace-operator.tar $(IMAGES_DIR)/thingspace-sim.tar $(IMAGES_DIR)/thingspace-proxy.tar

# image-tar builds one image: $(1) the cmd/ directory and entrypoint name, $(2) the tag, $(3) the tar.
define image-tar
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) go build -trimpath -o $(IMAGE_BINDIR)/$(1) ./cmd/$(1)
	go run ./hack/image --binary $(IMAGE_BINDIR)/$(1) --entrypoint /$(1) --tag $(2) --out $(3) \
		--ca-certs $(IMAGE_CA_CERTS) --epoch $(IMAGE_EPOCH) --source $(IMAGE_SOURCE) \
		--version "$(IMAGE_VERSION)" --revision "$(IMAGE_REVISION)"
endef

.PHONY: image
image: image-build ## Build the manager (IMG), simulator (SIM_IMG) and token sidecar (PROXY_IMG) images into bin/images, no Docker; load them into the local node when it is up.
	@if [ -x hack/cluster/load-image.sh ] && [ -f "$(LAB)/admin.kubeconfig" ]; then \
		hack/cluster/load-image.sh $(IMAGE_TARS); \
	else \
		echo "image: the node is not up ($(LAB)/admin.kubeconfig absent): not loaded; the images are ready: $(IMAGE_TARS)"; \
	fi

.PHONY: image-build
image-build: image-ca-certs ## Build the three image tars into bin/images only.
	$(call image-tar,manager,$(IMG),$(IMAGES_DIR)/thingspace-operator.tar)
	$(call image-tar,thingspace-sim,$(SIM_IMG),$(IMAGES_DIR)/thingspace-sim.tar)
	$(call image-tar,thingspace-proxy,$(PROXY_IMG),$(IMAGES_DIR)/thingspace-proxy.tar)

# The images carry the build host's CA bundle (Debian's ca-certificates), installed when missing.
.PHONY: image-ca-certs
image-ca-certs:
	@if [ ! -f "$(IMAGE_CA_CERTS)" ] && [ "$(IMAGE_CA_CERTS)" = /etc/ssl/certs/ca-certificates.crt ] \
		&& command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "image: installing ca-certificates for $(IMAGE_CA_CERTS)"; \
		apt-get install -y --no-install-recommends ca-certificates >/dev/null \
		|| { apt-get update >/dev/null && apt-get install -y --no-install-recommends ca-certificates >/dev/null; }; \
	fi

.PHONY: docker-build-sim
docker-build-sim: ## Build the simulator image SIM_IMG with Docker (Dockerfile target sim).
	$(CONTAINER_TOOL) build --target sim -t $(SIM_IMG) .

.PHONY: docker-push-sim
docker-push-sim: ## Push the simulator image SIM_IMG.
	$(CONTAINER_TOOL) push $(SIM_IMG)

.PHONY: docker-build-proxy
docker-build-proxy: ## Build the token sidecar image PROXY_IMG with Docker (Dockerfile target proxy).
	$(CONTAINER_TOOL) build --target proxy -t $(PROXY_IMG) .

.PHONY: docker-push-proxy
docker-push-proxy: ## Push the token sidecar image PROXY_IMG.
	$(CONTAINER_TOOL) push $(PROXY_IMG)
