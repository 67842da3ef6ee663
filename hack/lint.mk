# golangci-lint (configuration in .golangci.yml). Included from the main Makefile.

LOCALBIN ?= $(shell pwd)/bin
GOLANGCI_LINT_VERSION ?= v2.15.0
# Versioned name: bumping the version installs the new one instead of reusing an older binary.
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint into bin/ (built with go install from the module proxy).
$(GOLANGCI_LINT): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $@

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint over the tree.
	$(GOLANGCI_LINT) run ./...

.PHONY: lint-fix
lint-fix: $(GOLANGCI_LINT) ## Run golangci-lint and apply the fixes it can.
	$(GOLANGCI_LINT) run --fix ./...
