package memo

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// cacheView is a cache the test moves forward by hand: the status and UID it shows per object.
type cacheView map[types.NamespacedName]string

func (c cacheView) current(who types.NamespacedName) (string, types.UID, bool) {
	st, ok := c[who]
	return st, "u1", ok
}

// Once the cache shows the write that stored the decided status, only a mark is kept, and a pass that
// read its object before the cache caught up still decides from the stored status: it is read from
// the cache, not from the stale copy.
func TestFollowKeepsAStatusOnlyUntilTheCacheShowsItsWrite(t *testing.T) {
	who := types.NamespacedName{Namespace: "ns", Name: "a"}
	view := cacheView{who: "s0"}
	m := New[string]()
	m.Follow(view.current)

	m.Decide(who, "u1", "s1", "s0")
	m.storedDecided(who, "u1", "rv1")
	if m.Len() != 1 {
		t.Fatal("a status on its way to the cache must be kept")
	}
	m.Observed(who, "u1", "rv0") // an older version: nothing changes
	if got := m.Get(who, "u1", "s0"); got != "s1" || m.Len() != 1 {
		t.Fatalf("before the cache caught up: got %q, %d kept", got, m.Len())
	}
	view[who] = "s1"
	m.Observed(who, "u1", "rv1")
	if m.Len() != 0 {
		t.Fatal("the cache shows the write: the status must not be kept any more")
	}
	// A pass that read its object before the cache caught up (status s0) gets the cache's s1.
	if got := m.Get(who, "u1", "s0"); got != "s1" {
		t.Fatalf("stale read after the mark: got %q, want the cache's s1", got)
	}
	if base := m.Decide(who, "u1", "s2", "s0"); base != "s1" {
		t.Fatalf("base of the next write from a stale read: %q, want s1", base)
	}
	if got := m.Get(who, "u1", "s0"); got != "s2" {
		t.Fatalf("the new decision: got %q", got)
	}
	// A recreated object (another UID) inherits nothing.
	if got := m.Get(who, "u2", "new"); got != "new" {
		t.Fatalf("new UID: got %q", got)
	}
}

// The watch may bring a write before the write's response: the status is let go when the response
// comes. A decision newer than the write the cache shows is kept until it is stored and seen.
func TestFollowEventBeforeResponseAndNewerDecisions(t *testing.T) {
	who := types.NamespacedName{Namespace: "ns", Name: "a"}
	view := cacheView{who: "s0"}
	m := New[string]()
	m.Follow(view.current)
	m.Decide(who, "u1", "s1", "s0")
	view[who] = "s1"
	m.Observed(who, "u1", "rv1")
	if m.Len() != 1 {
		t.Fatal("nothing stored yet: kept")
	}
	m.storedDecided(who, "u1", "rv1")
	if m.Len() != 0 {
		t.Fatal("the cache showed this write before its response: let go")
	}

	m.Decide(who, "u1", "s2", "s1")
	m.storedDecided(who, "u1", "rv2")
	m.Decide(who, "u1", "s3", "s1") // decided, not yet written
	view[who] = "s2"
	m.Observed(who, "u1", "rv2")
	if got := m.Get(who, "u1", "s1"); got != "s3" {
		t.Fatalf("a newer decision was dropped: got %q", got)
	}
	if base := m.Decide(who, "u1", "s3", "s1"); base != "s2" {
		t.Fatalf("base %q, want the stored s2", base)
	}
	m.storedDecided(who, "u1", "rv3")
	view[who] = "s3"
	m.Observed(who, "u1", "rv3")
	if m.Len() != 0 {
		t.Fatal("caught up with the newer write: let go")
	}
	// A decision that goes back to what is stored writes nothing; once the cache showed that write,
	// nothing is kept.
	m.Decide(who, "u1", "s4", "s3")
	m.storedDecided(who, "u1", "rv4")
	view[who] = "s4"
	m.Decide(who, "u1", "s5", "s3") // pending
	m.Observed(who, "u1", "rv4")
	if base := m.Decide(who, "u1", "s4", "s3"); base != "s4" { // decided back: equal to the stored
		t.Fatalf("base %q", base)
	}
	m.storedDecided(who, "u1", "")
	if m.Len() != 0 {
		t.Fatal("nothing new on its way and the cache shows the stored write: let go")
	}
}

// Without Follow, statuses are kept as before.
func TestWithoutFollowStatusesStay(t *testing.T) {
	who := types.NamespacedName{Namespace: "ns", Name: "a"}
	m := New[string]()
	m.Decide(who, "u1", "s1", "s0")
	m.storedDecided(who, "u1", "rv1")
	m.Observed(who, "u1", "rv1")
	if got := m.Get(who, "u1", "s0"); got != "s1" || m.Len() != 1 {
		t.Fatalf("got %q, %d kept", got, m.Len())
	}
}

// Record through a client: after N objects are written and their writes seen, no status is kept; a
// reconcile that changes nothing writes nothing, from a stale read too.
func TestRecordFollowingTheCacheKeepsNothingOnceSeen(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var objs []client.Object
	for i := range n {
		objs = append(objs, &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprint("a", i), UID: types.UID(fmt.Sprint("u", i))}})
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(objs[0]).Build()
	ctx := context.Background()
	mem := New[v1alpha1.ThingSpaceAppStatus]()
	mem.Follow(func(who types.NamespacedName) (v1alpha1.ThingSpaceAppStatus, types.UID, bool) {
		a := &v1alpha1.ThingSpaceApp{}
		if err := c.Get(ctx, who, a); err != nil {
			return v1alpha1.ThingSpaceAppStatus{}, "", false
		}
		return a.Status, a.UID, true
	})
	st := v1alpha1.ThingSpaceAppStatus{RefreshStatus: v1alpha1.RefreshStatus{ObservedRefreshRequest: "r1"}}
	patches := 0
	for _, o := range objs {
		app := o.(*v1alpha1.ThingSpaceApp)
		with := func(s v1alpha1.ThingSpaceAppStatus) client.Object { x := app.DeepCopy(); x.Status = s; return x }
		if err := Record(ctx, c, mem, app, app.Status, st, with); err != nil {
			t.Fatal(err)
		}
		patches++
		stored := &v1alpha1.ThingSpaceApp{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(app), stored); err != nil {
			t.Fatal(err)
		}
		mem.Observed(client.ObjectKeyFromObject(app), app.UID, stored.ResourceVersion)
		// The next pass read the object before the cache caught up (app, status empty): no write.
		var count int
		counting := &countingClient{Client: c, n: &count}
		if err := Record(ctx, counting, mem, app, mem.Get(client.ObjectKeyFromObject(app), app.UID, app.Status), st, with); err != nil || count != 0 {
			t.Fatalf("a pass that changes nothing, from a stale read: %d writes, %v", count, err)
		}
	}
	if mem.Len() != 0 {
		t.Fatalf("%d statuses kept after every write was seen, want 0", mem.Len())
	}
}

type countingClient struct {
	client.Client
	n *int
}

func (c *countingClient) Status() client.SubResourceWriter {
	*c.n++
	return c.Client.Status()
}
