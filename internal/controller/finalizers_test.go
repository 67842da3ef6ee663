package controller

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// syncFinalizer on a copy read before the cache showed this process's own finalizer patch: the API
// server is asked instead of patching again (issue 13: a second object write per session created, seen
// by fakeclock's TestSessionFinalizerIsWrittenOnce); when someone removed the finalizer since, it is
// patched back.
func TestSyncFinalizerOnAStaleCopy(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	for _, tc := range []struct {
		name         string
		removedSince bool
		patches      int
	}{
		{name: "the cache is behind: no second patch", patches: 1},
		{name: "removed since by someone: patched back", removedSince: true, patches: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess := &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", UID: "s-uid"}}
			patches := 0
			c := interceptor.NewClient(fake.NewClientBuilder().WithScheme(scheme).WithObjects(sess.DeepCopy()).Build(), interceptor.Funcs{
				Patch: func(ctx context.Context, cl client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
					patches++
					return cl.Patch(ctx, obj, p, opts...)
				}})
			d := &Deps{Client: c, APIReader: c, finalizers: newFinalizerWrites()}
			first := sess.DeepCopy()
			if err := syncFinalizer(context.Background(), d, first, v1alpha1.LogoutFinalizer, true); err != nil {
				t.Fatal(err)
			}
			if tc.removedSince {
				controllerutil.RemoveFinalizer(first, v1alpha1.LogoutFinalizer)
				if err := c.Update(context.Background(), first); err != nil {
					t.Fatal(err)
				}
			}
			stale := sess.DeepCopy() // read before the cache showed the patch
			if err := syncFinalizer(context.Background(), d, stale, v1alpha1.LogoutFinalizer, true); err != nil {
				t.Fatal(err)
			}
			got := &v1alpha1.M2MSession{}
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(sess), got); err != nil {
				t.Fatal(err)
			}
			if patches != tc.patches || !controllerutil.ContainsFinalizer(got, v1alpha1.LogoutFinalizer) || !controllerutil.ContainsFinalizer(stale, v1alpha1.LogoutFinalizer) {
				t.Fatalf("%d patches (want %d); finalizers stored %v, in the pass's copy %v", patches, tc.patches, got.Finalizers, stale.Finalizers)
			}
		})
	}
}
