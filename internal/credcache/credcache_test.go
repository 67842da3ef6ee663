package credcache

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// metaCache plays the metadata cache: it shows the resourceVersions it was told it has seen.
type metaCache struct {
	client.Reader
	seen map[client.ObjectKey]string
}

func (m metaCache) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	rv, ok := m.seen[key]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, key.Name)
	}
	obj.SetResourceVersion(rv)
	return nil
}

// The API server is asked for a credentials Secret once per version the metadata cache shows, and
// whenever the cache has not seen the Secret; a deleted Secret is forgotten.
func TestReadsPastTheCacheOncePerVersion(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	key := client.ObjectKey{Namespace: "ns", Name: "creds"}
	api := fake.NewClientBuilder().WithScheme(s).WithObjects(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Data:       map[string][]byte{"key": []byte("k1"), "secret": []byte("s1")},
	}).Build()
	gets := 0
	meta := metaCache{seen: map[client.ObjectKey]string{}}
	r := &Reader{Meta: meta, API: interceptor.NewClient(api, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, k client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			gets++
			return c.Get(ctx, k, obj, opts...)
		},
	})}
	read := func(wantKey string, wantGets int, when string) {
		t.Helper()
		out := &corev1.Secret{}
		if err := r.Get(ctx, key, out); err != nil {
			t.Fatal(err)
		}
		if string(out.Data["key"]) != wantKey || string(out.Data["secret"]) != "s1" || gets != wantGets {
			t.Fatalf("%s: data %q after %d API reads, want key %q after %d", when, out.Data, gets, wantKey, wantGets)
		}
	}
	current := func() *corev1.Secret {
		cur := &corev1.Secret{}
		if err := api.Get(ctx, key, cur); err != nil {
			t.Fatal(err)
		}
		return cur
	}

	read("k1", 1, "not in the cache yet")
	read("k1", 2, "still not in the cache")
	meta.seen[key] = current().ResourceVersion
	for range 3 {
		read("k1", 2, "in the cache at the version read last")
	}

	// A new version: once the cache shows it, the API server is asked once more.
	upd := current()
	upd.Data["key"] = []byte("k2")
	if err := api.Update(ctx, upd); err != nil {
		t.Fatal(err)
	}
	read("k1", 2, "the cache lagging the change (its watch brings a reconcile when it catches up)")
	meta.seen[key] = current().ResourceVersion
	read("k2", 3, "after the change reached the cache")
	read("k2", 3, "the changed version in the cache")

	// Deleted: NotFound, and nothing kept.
	if err := api.Delete(ctx, current()); err != nil {
		t.Fatal(err)
	}
	delete(meta.seen, key)
	if err := r.Get(ctx, key, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Fatalf("deleted: %v, want NotFound", err)
	}
	if r.Len() != 0 {
		t.Fatalf("%d Secrets kept after the deletion", r.Len())
	}
}

// The deletion handler forgets a Secret, also when the informer missed the deletion itself.
func TestForgetterForgetsDeletedSecrets(t *testing.T) {
	r := &Reader{}
	for _, name := range []string{"a", "b"} {
		r.remember(client.ObjectKey{Namespace: "ns", Name: name}, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "1"}})
	}
	f := Forgetter{Reader: r}
	a := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}}
	b := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "b"}}
	f.deleted(a)
	f.deleted(toolscache.DeletedFinalStateUnknown{Key: "ns/b", Obj: b})
	if r.Len() != 0 {
		t.Fatalf("%d Secrets kept", r.Len())
	}
}

// The primer keeps the referenced credentials Secrets of every page, not the operator's own nor the
// unreferenced, and leaves a version read since alone.
func TestPrimerKeepsTheReferencedCredentials(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	sec := func(name string, lbl map[string]string) client.Object {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: lbl},
			Data: map[string][]byte{"key": []byte(name)}}
	}
	managed := map[string]string{"app.kubernetes.io/managed-by": "thingspace-operator"}
	api := fake.NewClientBuilder().WithScheme(s).WithObjects(
		sec("creds-1", nil), sec("creds-2", nil), sec("creds-3", nil), sec("unrelated", nil), sec("creds-ours", managed),
	).Build()
	r := &Reader{}
	newer := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "newer"}, Data: map[string][]byte{"key": []byte("read since")}}
	r.remember(client.ObjectKey{Namespace: "ns", Name: "creds-3"}, newer)
	p := Primer{Reader: r, API: api, PageSize: 2,
		NotOurs: NotManagedBy("app.kubernetes.io/managed-by", "thingspace-operator"),
		Census: census(map[string]map[string]bool{"ns": names("creds-1", "creds-2", "creds-3", "a", "b", "c", "d", "e", "f", "g")},
			map[string]int{"ns": 15})}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 3 {
		t.Fatalf("%d Secrets kept, want creds-1, creds-2 and creds-3", r.Len())
	}
	for name, want := range map[string]string{"creds-1": "creds-1", "creds-2": "creds-2", "creds-3": "read since"} {
		e := r.m[client.ObjectKey{Namespace: "ns", Name: name}]
		if len(e.data) != 1 || string(e.data[0].value) != want {
			t.Errorf("%s: kept %v, want %q", name, e.data, want)
		}
	}
}

// census answers Primer.Census with fixed names and counts.
func census(referenced map[string]map[string]bool, all map[string]int) func(context.Context) (map[string]map[string]bool, map[string]int, error) {
	return func(context.Context) (map[string]map[string]bool, map[string]int, error) { return referenced, all, nil }
}

// names is the set of the names given.
func names(given ...string) map[string]bool {
	out := map[string]bool{}
	for _, n := range given {
		out[n] = true
	}
	return out
}

// nNames is a set of n names, "creds" among them.
func nNames(n int) map[string]bool {
	out := names("creds")
	for i := 1; len(out) < n; i++ {
		out[fmt.Sprintf("creds-%d", i)] = true
	}
	return out
}

// A namespace is listed only where the credentials are most of its Secrets, and enough of them: a List
// brings every Secret there with its data (up to 1 MiB each), so others' Secrets must not outnumber
// what it saves. The others are left to the reconcilers' own reads.
func TestPrimerListsOnlyNamespacesMostlyOfCredentials(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	var objs []client.Object
	for _, ns := range []string{"mostly-creds", "mostly-others", "few-creds", "no-creds"} {
		objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"}, Data: map[string][]byte{"key": []byte(ns)}})
	}
	listed := map[string]int{}
	api := interceptor.NewClient(fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build(), interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			o := (&client.ListOptions{}).ApplyOptions(opts)
			listed[o.Namespace]++
			if o.Namespace == "" || o.Limit <= 0 || o.Limit > DefaultPageSize {
				t.Errorf("a List in namespace %q of limit %d: want one namespace, pages of at most %d", o.Namespace, o.Limit, DefaultPageSize)
			}
			return c.List(ctx, list, opts...)
		}})
	r := &Reader{}
	p := Primer{Reader: r, API: api,
		NotOurs: NotManagedBy("app.kubernetes.io/managed-by", "thingspace-operator"),
		Census: census(map[string]map[string]bool{"mostly-creds": nNames(300), "mostly-others": nNames(300), "few-creds": nNames(9)},
			map[string]int{"mostly-creds": 600, "mostly-others": 601, "few-creds": 9, "no-creds": 5000})}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed["mostly-creds"] != 1 {
		t.Errorf("Lists by namespace %v, want one of mostly-creds only", listed)
	}
	if r.Len() != 1 {
		t.Errorf("%d Secrets kept, want mostly-creds' one", r.Len())
	}
}
