##@ Chaos

CHAOS_ARGS ?=

.PHONY: chaos
chaos: envtest ## Run the chaos and soak suite (10 minutes, random seed; CHAOS_ARGS="--seed 7 --duration 2m").
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go run ./hack/chaos $(CHAOS_ARGS)
