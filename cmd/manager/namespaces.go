package main

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// watchNamespaces parses --watch-namespaces: comma-separated namespace names, blanks around them
// ignored, duplicates dropped. Empty means every namespace (nil). extra are namespaces the manager needs
// whenever it watches a list (the namespace of the cluster-scoped kinds' Secrets): they are added to a
// non-empty list and ignored otherwise.
func watchNamespaces(list string, extra ...string) ([]string, error) {
	var out []string
	for _, ns := range strings.Split(list, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
		}
		out = append(out, ns)
	}
	if len(out) == 0 {
		return nil, nil
	}
	for _, ns := range extra {
		if ns != "" {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
