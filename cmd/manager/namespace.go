package main

import (
	"os"
	"strings"
)

// serviceAccountNamespaceFile is where a pod finds its namespace without the downward API.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// clusterResourceNamespace is the namespace the cluster-scoped kinds keep their Secrets in: the flag
// when given, else the namespace the manager runs in (POD_NAMESPACE from the downward API, else the
// service account's namespace file). "" outside a cluster: the cluster kinds then say so in their status.
func clusterResourceNamespace(flagValue string, getenv func(string) string, readFile func(string) ([]byte, error)) string {
	if ns := strings.TrimSpace(flagValue); ns != "" {
		return ns
	}
	if ns := strings.TrimSpace(getenv("POD_NAMESPACE")); ns != "" {
		return ns
	}
	if b, err := readFile(serviceAccountNamespaceFile); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

// defaultClusterResourceNamespace resolves the flag against this process's environment.
func defaultClusterResourceNamespace(flagValue string) string {
	return clusterResourceNamespace(flagValue, os.Getenv, os.ReadFile)
}
