package credcache

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Primer is a manager runnable that, once the caches have synced, reads the credentials Secrets in
// pages and keeps the referenced ones in Reader. After a restart every object's first reconcile reads
// its credentials: 10,000 GETs for 10,000 ThingSpaceApps, where a page of 500 Secrets costs the API
// server about what one GET does. The reconciles start at the same time, so some still read their own;
// a page read after a newer version was kept leaves that version alone.
type Primer struct {
	Reader *Reader
	// API lists past the caches.
	API client.Reader
	// WaitForCacheSync waits for the caches Referenced reads (the manager's cache).
	WaitForCacheSync func(ctx context.Context) bool
	// Namespaces are the watched namespaces; none means all.
	Namespaces []string
	// Referenced tells whether the Secret ns/name is some object's credentials (from the caches).
	Referenced func(ctx context.Context, ns, name string) bool
	// NotOurs selects the Secrets to list: the operator's own managed Secrets are never credentials.
	NotOurs labels.Requirement
	// PageSize is the Secrets per List; zero means 500.
	PageSize int64
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
	size := p.PageSize
	if size <= 0 {
		size = 500
	}
	namespaces := p.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	kept := 0
	sel := labels.NewSelector().Add(p.NotOurs)
	for _, ns := range namespaces {
		cont := ""
		for {
			list := &corev1.SecretList{}
			opts := []client.ListOption{client.Limit(size), client.MatchingLabelsSelector{Selector: sel}}
			if ns != "" {
				opts = append(opts, client.InNamespace(ns))
			}
			if cont != "" {
				opts = append(opts, client.Continue(cont))
			}
			if err := p.API.List(ctx, list, opts...); err != nil {
				log.FromContext(ctx).Info("Not priming the credentials cache", "error", err.Error())
				return nil
			}
			for i := range list.Items {
				s := &list.Items[i]
				if p.Referenced(ctx, s.Namespace, s.Name) && p.Reader.rememberIfAbsent(client.ObjectKeyFromObject(s), s) {
					kept++
				}
			}
			if cont = list.Continue; cont == "" {
				break
			}
		}
	}
	log.FromContext(ctx).Info("Primed the credentials cache", "secrets", kept)
	return nil
}
