# The kubectl plugin (cmd/kubectl-thingspace, logic in internal/cli). Included from the main Makefile,
# which defines LOCALBIN, ENVTEST_ASSETS and the envtest target.

.PHONY: plugin
plugin: | $(LOCALBIN) ## Build the kubectl plugin into bin/kubectl-thingspace (put bin/ on PATH, then: kubectl thingspace --help).
	go build -o $(LOCALBIN)/kubectl-thingspace ./cmd/kubectl-thingspace

.PHONY: test-plugin
test-plugin: envtest ## Run the plugin's tests (formatting, parsing, and the commands against a real control plane).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test ./internal/cli/... ./cmd/kubectl-thingspace/... -count=1
