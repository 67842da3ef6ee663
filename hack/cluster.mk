# The local one-node cluster with a real kubelet (hack/cluster/, README "Local cluster").
# Included from the main Makefile:  include hack/cluster.mk
# Linux and root only; everything runs in a network + mount namespace of its own.

CLUSTER_MK_DIR := $(dir $(lastword $(MAKEFILE_LIST)))
LOCALBIN ?= $(shell pwd)/bin
LAB ?= /tmp/tsop-lab
NODE_SYNC_FREQUENCY ?= 1s
export LAB NODE_SYNC_FREQUENCY

.PHONY: node-binaries
node-binaries: ## Build kubelet, kube-controller-manager, kube-scheduler, kubectl into bin/k8s (cached); apt-get containerd, runc, busybox-static, CNI plugins when missing.
	$(CLUSTER_MK_DIR)cluster/build.sh $(LOCALBIN)/k8s

.PHONY: node-images
node-images: ## Build the pause and busybox images (docker-archive) into bin/images.
	$(CLUSTER_MK_DIR)cluster/images.sh $(LOCALBIN)/images

.PHONY: cluster
cluster: ## Bring up the local one-node cluster in LAB (default /tmp/tsop-lab; Linux, root; builds what it needs first).
	$(CLUSTER_MK_DIR)cluster/up.sh --preflight
	$(CLUSTER_MK_DIR)envtest.sh $(LOCALBIN)/k8s
	$(CLUSTER_MK_DIR)cluster/build.sh $(LOCALBIN)/k8s
	$(CLUSTER_MK_DIR)cluster/images.sh $(LOCALBIN)/images
	$(CLUSTER_MK_DIR)cluster/up.sh

.PHONY: cluster-down
cluster-down: ## Remove the local cluster: processes, mounts, cgroups and the LAB folder.
	$(CLUSTER_MK_DIR)cluster/down.sh

.PHONY: cluster-status
cluster-status: ## Show the local cluster's daemons and nodes.
	$(CLUSTER_MK_DIR)cluster/status.sh
