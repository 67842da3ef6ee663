package secrets

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

func newWriter(t *testing.T, objs ...client.Object) (*Writer, client.Client) {
	t.Helper()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithReturnManagedFields().Build()
	return &Writer{Client: c, Meta: c, Reader: c, Scheme: scheme}, c
}

func owner(name, uid string) *v1alpha1.CloudAuthorization {
	return &v1alpha1.CloudAuthorization{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + uid)}}
}

func secret(name string, data map[string][]byte, mutate ...func(*corev1.Secret)) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Data: data}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func hasRefreshToken(s *corev1.Secret) bool { return len(s.Data["refresh_token"]) > 0 }

func TestFreshAdoptsOnlyWhatItMay(t *testing.T) {
	ctx := context.Background()
	me, other := owner("me", "1"), owner("other", "2")
	otherRef := func(s *corev1.Secret) {
		s.Labels = map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}
		s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "X", Name: other.Name, UID: other.UID, Controller: new(true)}}
	}
	cases := []struct {
		name      string
		existing  *corev1.Secret
		adoptable func(*corev1.Secret) bool
		conflict  bool
	}{
		{"absent", nil, hasRefreshToken, false},
		{"unowned with a refresh token is adopted", secret("t", map[string][]byte{"refresh_token": []byte("r")}), hasRefreshToken, false},
		{"unowned without one is someone else's", secret("t", map[string][]byte{"password": []byte("p")}), hasRefreshToken, true},
		{"unowned, no adoption offered", secret("t", map[string][]byte{"refresh_token": []byte("r")}), nil, true},
		{"controlled by another object", secret("t", map[string][]byte{"refresh_token": []byte("r")}, otherRef), hasRefreshToken, true},
	}
	for _, tc := range cases {
		var objs []client.Object
		if tc.existing != nil {
			objs = append(objs, tc.existing)
		}
		w, _ := newWriter(t, objs...)
		got, err := w.Fresh(ctx, me, "t", tc.adoptable)
		var conflict *ConflictError
		if errors.As(err, &conflict) != tc.conflict {
			t.Errorf("%s: err = %v, want conflict %v", tc.name, err, tc.conflict)
			continue
		}
		if tc.conflict || tc.existing == nil {
			continue
		}
		if got == nil {
			t.Errorf("%s: no Secret returned", tc.name)
			continue
		}
		written, changed, err := w.Write(ctx, me, got, "t", Change{Data: got.Data, Adopt: true})
		if err != nil || !changed || metav1.GetControllerOf(written).UID != me.UID || !IsManaged(written) {
			t.Errorf("%s: adoption write: changed %v, err %v", tc.name, changed, err)
		}
	}
}

func TestWriteAnnotationsAndPreconditions(t *testing.T) {
	ctx := context.Background()
	me := owner("me", "1")
	marker, other := v1alpha1.RefreshStartedAnnotation, v1alpha1.RefreshedAtAnnotation
	w, c := newWriter(t)
	s, written, err := w.Write(ctx, me, nil, "t", Change{
		Data:        map[string][]byte{"a": []byte("1")},
		Annotations: map[string]string{marker: "m1", other: "o"},
	})
	if err != nil || !written || s.Annotations[marker] != "m1" {
		t.Fatalf("create: %v %v %v", s, written, err)
	}
	stale := s.DeepCopy()
	s, written, err = w.Write(ctx, me, s, "t", Change{Data: s.Data, Annotations: map[string]string{marker: ""}})
	if err != nil || !written {
		t.Fatalf("clear marker: %v %v", written, err)
	}
	if _, ok := s.Annotations[marker]; ok || s.Annotations[other] != "o" {
		t.Fatalf("annotations after removal: %v", s.Annotations)
	}
	// Nothing changes: nothing is written.
	if _, written, err = w.Write(ctx, me, s, "t", Change{Data: s.Data}); err != nil || written {
		t.Fatalf("no-op write: %v %v", written, err)
	}
	// A write decided from a stale read fails instead of overwriting.
	if _, _, err = w.Write(ctx, me, stale, "t", Change{Data: map[string][]byte{"a": []byte("2")}}); !apierrors.IsConflict(err) {
		t.Fatalf("stale write: %v, want a conflict", err)
	}
	got := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "t"}, got); err != nil || string(got.Data["a"]) != "1" {
		t.Fatalf("stored: %v %v", got.Data, err)
	}
}

// When the metadata cache and the managed one disagree about our Secret (our create or rotation a
// moment ago, seen by one of them only), it is read past the caches: decided from the stale copy it
// would be written again.
func TestGetReadsPastTheCachesWhenTheyDisagree(t *testing.T) {
	ctx := context.Background()
	me := owner("me", "1")
	ours := func(token string) *corev1.Secret {
		return secret("t", map[string][]byte{"access_token": []byte(token)}, func(s *corev1.Secret) {
			s.Labels = map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}
			s.OwnerReferences = []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "CloudAuthorization",
				Name: me.Name, UID: me.UID, Controller: new(true)}}
		})
	}
	for _, c := range []struct {
		name    string
		managed []client.Object // the managed cache's copy
		reads   int
	}{
		{"not in the managed cache yet", nil, 1},
		{"an older version in the managed cache", []client.Object{ours("old")}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, api := newWriter(t, ours("new"))
			cur := &corev1.Secret{}
			_ = api.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "t"}, cur)
			cur.Data["access_token"] = []byte("newer") // a second version: the managed cache's differs
			if err := api.Update(ctx, cur); err != nil {
				t.Fatal(err)
			}
			managed, _ := newWriter(t, c.managed...)
			w.Client = managed.Client
			reads := 0
			w.Reader = countingReader{Reader: api, n: &reads}
			got, err := w.Get(ctx, me, "t")
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || string(got.Data["access_token"]) != "newer" || reads != c.reads {
				t.Fatalf("got %v after %d reads past the caches, want the API server's after %d", got, reads, c.reads)
			}
		})
	}
	// Caches that agree are not read past.
	w, api := newWriter(t, ours("a"))
	reads := 0
	w.Reader = countingReader{Reader: api, n: &reads}
	if got, err := w.Get(ctx, me, "t"); err != nil || got == nil || reads != 0 {
		t.Fatalf("caches agreeing: %v, %v after %d reads past them, want 0", got, err, reads)
	}
}

type countingReader struct {
	client.Reader
	n *int
}

func (c countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	*c.n++
	return c.Reader.Get(ctx, key, obj, opts...)
}
