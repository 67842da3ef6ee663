package controller

import (
	"context"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// inNamespaceOnly are the field indexes only ever listed within one namespace (a Secret's or an app's
// own; a cluster-scoped kind's have no namespace and keep the all-namespaces key): requestsWhere with the event's namespace. controller-runtime's IndexField files every value of
// a namespaced object twice, under "<namespace>/<value>" and "__all_namespaces/<value>", each key a set
// of its own in the informer's index: at 10,000 objects of a kind, one such unused set per index costs
// about 2 MiB (make bench's heap profile). These are filed once, in their namespace; a List across
// all namespaces by one of them would find nothing.
var inNamespaceOnly = map[string]bool{indexCredentialsSecret: true, indexStandbySecret: true, indexTargetSecret: true, indexAppRef: true}

// informerGetter is the part of the manager's cache indexInNamespace needs.
type informerGetter interface {
	GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error)
}

// indexInNamespace registers field as controller-runtime's IndexField does (the same index name and key
// format, so client.MatchingFields with client.InNamespace finds it) without the all-namespaces keys.
// A cluster-scoped object's values are filed under controller-runtime's all-namespaces key, as before.
func indexInNamespace(c informerGetter, obj client.Object, field string, extract client.IndexerFunc) error {
	inf, err := c.GetInformer(context.Background(), obj, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	return inf.AddIndexers(toolscache.Indexers{fieldIndexName(field): func(raw any) ([]string, error) {
		o, ok := raw.(client.Object)
		if !ok {
			return nil, nil
		}
		vals := extract(o)
		for i, v := range vals {
			vals[i] = namespacedKey(o.GetNamespace(), v)
		}
		return vals, nil
	}})
}

// fieldIndexName and namespacedKey are controller-runtime's (pkg/cache/internal): the cache reader
// looks a field selector up under these.
func fieldIndexName(field string) string { return "field:" + field }

func namespacedKey(ns, v string) string {
	if ns == "" {
		ns = "__all_namespaces"
	}
	return ns + "/" + v
}
