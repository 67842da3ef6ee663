package credcache

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Primer is a manager runnable that, once the caches have synced, reads the credentials Secrets in
// pages and keeps the referenced ones in Reader. After a restart every object's first reconcile reads
// its credentials: 10,000 GETs for 10,000 ThingSpaceApps, where a page of Secrets costs the API server
// about what one GET does. The reconciles start at the same time, so some still read their own; a page
// read after a newer version was kept leaves that version alone.
//
// A List reads every Secret of a namespace with its data, and a Secret may hold up to 1 MiB (Helm
// keeps whole releases in them): 300 such Secrets next to the operator's took the manager to 830 MiB
// in one page of 500. So a namespace is listed only where the credentials are most of its Secrets
// (Census, from the metadata cache), in small pages; elsewhere the reconcilers read their own.
type Primer struct {
	Reader *Reader
	// API lists past the caches.
	API client.Reader
	// WaitForCacheSync waits for the caches Census reads (the manager's caches).
	WaitForCacheSync func(ctx context.Context) bool
	// Namespaces are the watched namespaces; none means all.
	Namespaces []string
	// Census reads from the caches, per namespace, the names of the Secrets objects name as their
	// credentials and how many Secrets there are in all.
	Census func(ctx context.Context) (referenced map[string]map[string]bool, all map[string]int, err error)
	// NotOurs selects the Secrets to list: the operator's own managed Secrets are never credentials.
	NotOurs labels.Requirement
	// PageSize is the Secrets per List; zero means DefaultPageSize.
	PageSize int64
}

// DefaultPageSize bounds what one List brings into memory: 50 Secrets, 50 MiB at Kubernetes' limit of
// 1 MiB a Secret, but a namespace with more others' Secrets than credentials is never listed.
const DefaultPageSize = 50

// minReferenced is the fewest credentials Secrets a namespace must hold to be listed: below it the
// reconcilers' own reads cost about as much.
const minReferenced = 10

// worthListing reports whether namespace ns is worth a List: enough credentials Secrets there, and at
// most as many Secrets of others (whatever their size) as credentials.
func worthListing(referenced, all int) bool {
	return referenced >= minReferenced && all-referenced <= referenced
}

// NotManagedBy is the label requirement "label != value" (or absent).
func NotManagedBy(label, value string) labels.Requirement {
	r, err := labels.NewRequirement(label, selection.NotEquals, []string{value})
	if err != nil {
		panic(err) // a constant label and value
	}
	return *r
}

// NeedLeaderElection is true: the reconcilers it serves run on the leader only.
func (p Primer) NeedLeaderElection() bool { return true }

// Start primes Reader once and returns; a failure leaves the reconcilers to read for themselves.
func (p Primer) Start(ctx context.Context) error {
	if p.WaitForCacheSync != nil && !p.WaitForCacheSync(ctx) {
		return nil
	}
	if p.Census == nil {
		return nil
	}
	referenced, all, err := p.Census(ctx)
	if err != nil {
		log.FromContext(ctx).Info("Not priming the credentials cache", "error", err.Error())
		return nil
	}
	size := p.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	namespaces := p.Namespaces
	if len(namespaces) == 0 {
		for ns := range referenced {
			namespaces = append(namespaces, ns)
		}
		slices.Sort(namespaces)
	}
	kept, listed, skipped := 0, 0, 0
	sel := labels.NewSelector().Add(p.NotOurs)
	for _, ns := range namespaces {
		if !worthListing(len(referenced[ns]), all[ns]) {
			if len(referenced[ns]) > 0 {
				skipped++
			}
			continue
		}
		listed++
		n, err := p.prime(ctx, ns, referenced[ns], sel, size)
		kept += n
		if err != nil {
			log.FromContext(ctx).Info("Not priming the credentials cache", "namespace", ns, "error", err.Error())
			return nil
		}
	}
	log.FromContext(ctx).Info("Primed the credentials cache", "secrets", kept, "namespaces", listed, "namespacesLeftToReconcilers", skipped)
	return nil
}

// prime lists the Secrets of namespace ns in pages of size and keeps the ones named in referenced.
func (p Primer) prime(ctx context.Context, ns string, referenced map[string]bool, sel labels.Selector, size int64) (int, error) {
	kept, cont := 0, ""
	for {
		list := &corev1.SecretList{}
		opts := []client.ListOption{client.InNamespace(ns), client.Limit(size), client.MatchingLabelsSelector{Selector: sel}}
		if cont != "" {
			opts = append(opts, client.Continue(cont))
		}
		if err := p.API.List(ctx, list, opts...); err != nil {
			return kept, err
		}
		for i := range list.Items {
			s := &list.Items[i]
			if referenced[s.Name] && p.Reader.rememberIfAbsent(client.ObjectKeyFromObject(s), s) {
				kept++
			}
		}
		if cont = list.Continue; cont == "" {
			return kept, nil
		}
	}
}
