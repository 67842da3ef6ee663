// Package credcache reads credentials Secrets past the informer cache once per version.
//
// Credentials Secrets are the user's: the manager caches only their metadata (caching every Secret of
// the cluster is what makes operators run out of memory), so their data was read from the API server
// on every reconcile: at 10,000 ThingSpaceApps, two GETs per app at creation and one per app after
// each restart, queued in front of the work that matters. Reader keeps the data of the credentials
// Secrets it has read with their resourceVersion, and reads again only when the metadata cache shows
// another version (a change wakes the reconcilers through that cache anyway) or has not seen the
// Secret. What it keeps is what the reconcilers would read again: no more exposure than the managed
// Secrets' cache, and nothing of it is logged.
package credcache

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/internal/intern"
)

// Reader is a client.Reader for Secrets: Get answers from its memory when the metadata cache holds
// the version it remembers, else from the API server. List always goes to the API server.
type Reader struct {
	// Meta is the metadata-only cache of Secrets; API reads past every cache.
	Meta, API client.Reader

	mu sync.Mutex
	m  map[types.NamespacedName]remembered
}

type remembered struct {
	resourceVersion string
	secretType      corev1.SecretType
	data            []datum
}

type datum struct {
	key   string
	value []byte
}

var _ client.Reader = (*Reader)(nil)

// Get reads the Secret key into obj (a *corev1.Secret; any other type goes to the API server).
func (r *Reader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	s, ok := obj.(*corev1.Secret)
	if !ok || len(opts) > 0 {
		return r.API.Get(ctx, key, obj, opts...)
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.Meta.Get(ctx, key, meta); err == nil {
		if r.fill(key, meta.ResourceVersion, s) {
			return nil
		}
	}
	// Not seen by the metadata cache yet (just created), or another version: ask the API server.
	if err := r.API.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			r.Forget(key)
		}
		return err
	}
	r.remember(key, s)
	return nil
}

// List lists from the API server.
func (r *Reader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.API.List(ctx, list, opts...)
}

// Forget drops what is kept of the Secret key (it was deleted).
func (r *Reader) Forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, key)
}

// Len is how many Secrets are kept (tests).
func (r *Reader) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

func (r *Reader) fill(key types.NamespacedName, resourceVersion string, s *corev1.Secret) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[key]
	if !ok || e.resourceVersion != resourceVersion {
		return false
	}
	*s = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, ResourceVersion: resourceVersion},
		Type: e.secretType, Data: make(map[string][]byte, len(e.data))}
	for _, d := range e.data {
		s.Data[d.key] = append([]byte(nil), d.value...)
	}
	return true
}

// rememberIfAbsent keeps s unless a version of it is kept already (read since, so not older).
func (r *Reader) rememberIfAbsent(key types.NamespacedName, s *corev1.Secret) bool {
	return r.keep(key, s, false)
}

func (r *Reader) remember(key types.NamespacedName, s *corev1.Secret) { r.keep(key, s, true) }

func (r *Reader) keep(key types.NamespacedName, s *corev1.Secret, replace bool) bool {
	// Keys, type and namespace repeat across Secrets: shared (intern.Default).
	e := remembered{resourceVersion: s.ResourceVersion, secretType: corev1.SecretType(intern.Default.String(string(s.Type))),
		data: make([]datum, 0, len(s.Data))}
	for k, v := range s.Data {
		e.data = append(e.data, datum{key: intern.Default.String(k), value: append([]byte(nil), v...)})
	}
	key.Namespace = intern.Default.String(key.Namespace)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[types.NamespacedName]remembered{}
	}
	if _, ok := r.m[key]; ok && !replace {
		return false
	}
	r.m[key] = e
	return true
}

// Forgetter is a manager runnable that makes Reader forget the Secrets the metadata cache sees deleted,
// so that deleted credentials do not stay in memory.
type Forgetter struct {
	Reader *Reader
	// Cache is the metadata-only cache of Secrets (Reader.Meta).
	Cache cache.Cache
}

// NeedLeaderElection is true: the reconcilers that fill Reader run on the leader only.
func (f Forgetter) NeedLeaderElection() bool { return true }

// Start registers the deletion handler and waits for the manager to stop.
func (f Forgetter) Start(ctx context.Context) error {
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	inf, err := f.Cache.GetInformer(ctx, meta)
	if err != nil {
		return nil // stopping before the sync
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: f.deleted}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func (f Forgetter) deleted(obj any) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if o, ok := obj.(client.Object); ok {
		f.Reader.Forget(client.ObjectKeyFromObject(o))
	}
}
