package memo

import (
	"context"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

func TestStatusMemoryPrefersWhatWasDecidedForTheSameObject(t *testing.T) {
	m := New[string]()
	who := types.NamespacedName{Namespace: "ns", Name: "a"}
	if got := m.Get(who, "u1", "cached"); got != "cached" {
		t.Fatalf("nothing decided yet: got %q", got)
	}
	if base := m.Decide(who, "u1", "decided", "cached"); base != "cached" {
		t.Fatalf("nothing stored yet: base %q", base)
	}
	if got := m.Get(who, "u1", "stale-cached"); got != "decided" {
		t.Fatalf("a stale cache must lose to what this process decided: got %q", got)
	}
	m.Stored(who, "u1", "decided")
	if base := m.Decide(who, "u1", "next", "stale-cached"); base != "decided" {
		t.Fatalf("the base of the next write is what was stored: got %q", base)
	}
	if got := m.Get(who, "u2", "new-object"); got != "new-object" {
		t.Fatalf("a recreated object (new UID) must not inherit: got %q", got)
	}
	m.Forget(who)
	if got := m.Get(who, "u1", "cached"); got != "cached" {
		t.Fatalf("after forget: got %q", got)
	}
}

// Issue 8 scenario 13: the outcome of a side effect is remembered even when the status write that
// records it fails, and the write is retried on the next pass although nothing new happened.
func TestRecordStatusRemembersWhenTheWriteFails(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	app := &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a", UID: "u1"}}
	failNext, patches := true, 0
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(app.DeepCopy()).WithStatusSubresource(app).
		WithInterceptorFuncs(interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, o ...client.SubResourcePatchOption) error {
			patches++
			if failNext {
				failNext = false
				return errors.New("apiserver unavailable")
			}
			return c.SubResource(sub).Patch(ctx, obj, p, o...)
		}}).Build()
	mem := New[v1alpha1.ThingSpaceAppStatus]()
	with := func(s v1alpha1.ThingSpaceAppStatus) client.Object { x := app.DeepCopy(); x.Status = s; return x }
	who := client.ObjectKeyFromObject(app)
	st := v1alpha1.ThingSpaceAppStatus{RefreshStatus: v1alpha1.RefreshStatus{ObservedRefreshRequest: "r1"}}

	if err := Record(context.Background(), c, mem, app, app.Status, st, with); err == nil {
		t.Fatal("the failing write reported success")
	}
	if got := mem.Get(who, "u1", app.Status); got.ObservedRefreshRequest != "r1" {
		t.Fatal("the decided status was not remembered when its write failed: the next pass would repeat the side effect")
	}
	// The next pass decides nothing new: the write is still owed.
	if err := Record(context.Background(), c, mem, app, app.Status, st, with); err != nil {
		t.Fatal(err)
	}
	stored := &v1alpha1.ThingSpaceApp{}
	if err := c.Get(context.Background(), who, stored); err != nil {
		t.Fatal(err)
	}
	if stored.Status.ObservedRefreshRequest != "r1" {
		t.Fatalf("status not stored on the retry: %+v", stored.Status)
	}
	// Nothing changes, the cache still lags: no write.
	if err := Record(context.Background(), c, mem, app, app.Status, st, with); err != nil || patches != 2 {
		t.Fatalf("err %v, %d patches; want 2 (one failed, one stored)", err, patches)
	}
}
