# envtest control-plane binaries (kube-apiserver, etcd) for tests.
# Included from the main Makefile:  include hack/envtest.mk
# Tests should use KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) (an absolute path).

# Directory of this fragment, so the script is found wherever make runs from.
ENVTEST_MK_DIR := $(dir $(lastword $(MAKEFILE_LIST)))

LOCALBIN ?= $(shell pwd)/bin
ENVTEST_ASSETS ?= $(LOCALBIN)/k8s

.PHONY: envtest
envtest: ## Provide kube-apiserver and etcd in bin/k8s (download, else build from source).
	$(ENVTEST_MK_DIR)envtest.sh $(ENVTEST_ASSETS)
