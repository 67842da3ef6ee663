package main

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/credops/thingspace-operator/internal/controller"
)

// shardFlags are the flags of a manager that is one shard of several (README "Sharding").
type shardFlags struct {
	selector, leaseID, registryNamespace string
}

// shardOptions validates the flags and resolves the registry's namespace: the flag, else the
// leader-election namespace, else the manager's own (clusterNamespace). The leader-election ID must
// be a valid Lease name: it is the shard's identity in the registry too.
func (f shardFlags) shardOptions(leaderNamespace, clusterNamespace string) (controller.ShardOptions, error) {
	sel, err := labels.Parse(f.selector)
	if err != nil {
		return controller.ShardOptions{}, fmt.Errorf("--watch-label-selector %q: %w", f.selector, err)
	}
	if errs := validation.IsDNS1123Subdomain(f.leaseID); len(errs) > 0 {
		return controller.ShardOptions{}, fmt.Errorf("--leader-election-id %q: %s", f.leaseID, strings.Join(errs, "; "))
	}
	ns := strings.TrimSpace(f.registryNamespace)
	if ns != "" {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return controller.ShardOptions{}, fmt.Errorf("--holder-registry-namespace %q: %s", ns, strings.Join(errs, "; "))
		}
	} else if ns = leaderNamespace; ns == "" {
		ns = clusterNamespace
	}
	return controller.ShardOptions{LabelSelector: sel, RegistryNamespace: ns, Identity: f.leaseID}, nil
}
