# Benchmark and demo: real control plane (envtest), simulator and manager binaries.
# Included from the main Makefile, which defines ENVTEST_ASSETS and the envtest target.

BENCH_ARGS ?=
DEMO_ARGS ?=

.PHONY: bench
bench: envtest ## Benchmark 1,000 each of ThingSpaceApps, M2MSessions, CloudAuthorizations and consumers of each cluster kind: create→Ready per kind, upstream calls, API writes per object, memory, restart (BENCH_ARGS="--json --consumers=N").
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go run ./hack/bench $(BENCH_ARGS)

.PHONY: demo
demo: envtest ## Run the operator locally against the simulator and narrate token rotation, sessions and a Cloud consent (DEMO_ARGS=--duration=60s).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go run ./hack/demo $(DEMO_ARGS)
