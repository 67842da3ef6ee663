package secrets

import (
	"context"
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// laggingCache is a cache that shows what the test copied into it, and nothing written since.
type laggingCache map[types.NamespacedName]*corev1.Secret

func (c laggingCache) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	s, ok := c[key]
	if !ok {
		return apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
	}
	switch o := obj.(type) {
	case *corev1.Secret:
		s.DeepCopyInto(o)
	case *metav1.PartialObjectMetadata:
		o.ObjectMeta = *s.ObjectMeta.DeepCopy()
	default:
		return fmt.Errorf("laggingCache: %T", obj)
	}
	return nil
}

func (c laggingCache) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("laggingCache: no List")
}

// catchUp copies the API server's Secret into the cache (nil: it is gone).
func (c laggingCache) catchUp(t *testing.T, api client.Client, key types.NamespacedName) {
	t.Helper()
	s := &corev1.Secret{}
	if err := api.Get(context.Background(), key, s); apierrors.IsNotFound(err) {
		delete(c, key)
		return
	} else if err != nil {
		t.Fatal(err)
	}
	c[key] = s
}

// cachedClient reads from a cache and writes to the API server, as the manager's client does.
type cachedClient struct {
	client.Client
	cache laggingCache
}

func (c cachedClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return c.cache.Get(ctx, key, obj, opts...)
}

// apiCalls counts the Writer's requests to the API server.
type apiCalls struct{ creates, writes, deletes, reads int }

// newLaggingWriter is a Writer whose caches (both the metadata one and the managed one) show only what
// the test copies into them.
func newLaggingWriter(t *testing.T) (*Writer, client.Client, laggingCache, *apiCalls) {
	t.Helper()
	calls := &apiCalls{}
	w, api := newWriter(t)
	counted := interceptorClient(api.(client.WithWatch), calls)
	cache := laggingCache{}
	w.Client = cachedClient{Client: counted, cache: cache}
	w.Meta = cache
	w.Reader = countingReader{Reader: api, n: &calls.reads}
	return w, api, cache, calls
}

func interceptorClient(c client.WithWatch, calls *apiCalls) client.WithWatch {
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			calls.creates++
			return c.Create(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			calls.writes++
			return c.Patch(ctx, obj, patch, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			calls.writes++
			return c.Apply(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			calls.deletes++
			return c.Delete(ctx, obj, opts...)
		},
	})
}

// A reconcile right after the Writer's own create or rotation reads caches that do not show it yet:
// it must see what was written, and write nothing again, without reading past the caches (1.9 % of
// 10,000 new ThingSpaceApps were created twice, refused with AlreadyExists, before).
func TestGetSeesOwnWritesTheCachesHaveNotShownYet(t *testing.T) {
	ctx := context.Background()
	me := owner("me", "1")
	key := types.NamespacedName{Namespace: "ns", Name: "t"}
	w, api, cache, calls := newLaggingWriter(t)
	tok := func(v string) Change { return Change{Data: map[string][]byte{"access_token": []byte(v)}} }

	// A create the caches have not seen.
	if _, written, err := w.Write(ctx, me, nil, "t", tok("a")); err != nil || !written {
		t.Fatalf("create: %v %v", written, err)
	}
	got, err := w.Get(ctx, me, "t")
	if err != nil || got == nil || string(got.Data["access_token"]) != "a" {
		t.Fatalf("Get after the create: %v, %v; want the created Secret", got, err)
	}
	if _, written, err := w.Write(ctx, me, got, "t", tok("a")); err != nil || written {
		t.Fatalf("the same content again: written %v, %v", written, err)
	}
	if *calls != (apiCalls{creates: 1}) {
		t.Fatalf("API calls after a create and a reconcile on lagging caches: %+v, want 1 create and nothing else", *calls)
	}

	// The caches catch up: the expectation goes, the cache answers.
	cache.catchUp(t, api, key)
	if got, err = w.Get(ctx, me, "t"); err != nil || got == nil || w.expect.len() != 0 {
		t.Fatalf("caught up: %v, %v, %d remembered", got, err, w.expect.len())
	}

	// A rotation the caches have not seen: they still show the first token, and agree.
	if _, written, err := w.Write(ctx, me, got, "t", tok("b")); err != nil || !written {
		t.Fatalf("rotation: %v %v", written, err)
	}
	got, err = w.Get(ctx, me, "t")
	if err != nil || got == nil || string(got.Data["access_token"]) != "b" {
		t.Fatalf("Get after the rotation: %v, %v; want the rotated token", got, err)
	}
	if _, written, err := w.Write(ctx, me, got, "t", tok("b")); err != nil || written {
		t.Fatalf("the rotated content again: written %v, %v", written, err)
	}
	if *calls != (apiCalls{creates: 1, writes: 1}) {
		t.Fatalf("API calls after a rotation and a reconcile on lagging caches: %+v, want 1 create and 1 write", *calls)
	}

	// Someone else writes after us and the caches show it: they know better than the expectation.
	cur := &corev1.Secret{}
	if err := api.Get(ctx, key, cur); err != nil {
		t.Fatal(err)
	}
	cur.Data["access_token"] = []byte("theirs")
	if err := api.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	cache.catchUp(t, api, key)
	if got, err = w.Get(ctx, me, "t"); err != nil || string(got.Data["access_token"]) != "theirs" || w.expect.len() != 0 {
		t.Fatalf("after someone else's write: %v, %v, %d remembered", got, err, w.expect.len())
	}

	// A delete the caches have not seen: the Secret is gone for Get, and not deleted twice.
	if err := w.Delete(ctx, me, got); err != nil {
		t.Fatal(err)
	}
	if got, err = w.Get(ctx, me, "t"); err != nil || got != nil {
		t.Fatalf("Get after the delete: %v, %v; want none", got, err)
	}
	cache.catchUp(t, api, key)
	if _, err = w.Get(ctx, me, "t"); err != nil || w.expect.len() != 0 {
		t.Fatalf("delete caught up: %v, %d remembered", err, w.expect.len())
	}
	if calls.deletes != 1 || calls.reads != 0 {
		t.Fatalf("API calls: %+v, want 1 delete and no read past the caches", *calls)
	}
}

// A write from a remembered copy that no longer holds (someone changed the Secret and the caches do
// not show it yet) is a conflict, as from any stale copy, and the expectation goes with it.
func TestFailedWriteDropsTheExpectation(t *testing.T) {
	ctx := context.Background()
	me := owner("me", "1")
	key := types.NamespacedName{Namespace: "ns", Name: "t"}
	w, api, _, _ := newLaggingWriter(t)
	if _, _, err := w.Write(ctx, me, nil, "t", Change{Data: map[string][]byte{"k": []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	cur := &corev1.Secret{}
	if err := api.Get(ctx, key, cur); err != nil {
		t.Fatal(err)
	}
	cur.Data["k"] = []byte("theirs")
	if err := api.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	got, err := w.Get(ctx, me, "t")
	if err != nil || got == nil {
		t.Fatalf("Get: %v %v", got, err)
	}
	if _, _, err := w.Write(ctx, me, got, "t", Change{Data: map[string][]byte{"k": []byte("b")}}); !apierrors.IsConflict(err) {
		t.Fatalf("write from the remembered copy: %v, want a conflict", err)
	}
	if w.expect.len() != 0 {
		t.Fatalf("%d remembered after the conflict, want 0", w.expect.len())
	}
}

// The remembered writes are bounded: beyond maxExpectations the oldest go (costing only the read past
// the caches they would have saved).
func TestExpectationsAreBounded(t *testing.T) {
	var x expectations
	for i := range maxExpectations + 10 {
		x.wrote(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprint("s", i), ResourceVersion: fmt.Sprint(i + 1)}})
		x.wrote(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprint("s", i), ResourceVersion: fmt.Sprint(i + 2)}})
	}
	if n := x.len(); n != maxExpectations {
		t.Fatalf("%d remembered, want %d", n, maxExpectations)
	}
	if _, ok := x.get(types.NamespacedName{Namespace: "ns", Name: "s0"}); ok {
		t.Fatal("the oldest is still remembered")
	}
	if e, ok := x.get(types.NamespacedName{Namespace: "ns", Name: fmt.Sprint("s", maxExpectations+9)}); !ok || e.rv != maxExpectations+11 {
		t.Fatalf("the newest: %+v %v", e, ok)
	}
	if len(x.order) > 2*maxExpectations {
		t.Fatalf("order holds %d", len(x.order))
	}
}
