# placeholder until the envtest build lands
ENVTEST_ASSETS ?= $(LOCALBIN)/k8s
