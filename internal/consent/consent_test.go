package consent

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/cloudapi"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testClient(t *testing.T) *cloudapi.Client {
	t.Helper()
	cl, err := cloudapi.New("https://cloud.example/cloud/1", http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func spec() *v1alpha1.CloudAuthorizationSpec {
	return &v1alpha1.CloudAuthorizationSpec{CallbackURL: "https://op.example/oauth2/callback", DeviceID: "d"}
}

func TestIssueAndEnsure(t *testing.T) {
	cl, s := testClient(t), &Store{TTL: time.Minute}
	st := &v1alpha1.CloudAuthorizationStatus{}
	if err := s.Ensure(st, cl, "id", spec(), t0); err != nil {
		t.Fatal(err)
	}
	first := st.AuthorizationURL
	state := stateOf(first)
	if !WellFormed(state) || !st.AuthorizationURLExpiresAt.Time.Equal(t0.Add(time.Minute)) ||
		!strings.Contains(first, "client_id=id") || !strings.Contains(first, "deviceid=d") {
		t.Fatalf("URL %q, expires %v", first, st.AuthorizationURLExpiresAt)
	}
	// Still live and for the same spec: kept.
	must(t, s.Ensure(st, cl, "id", spec(), t0.Add(59*time.Second)))
	if st.AuthorizationURL != first {
		t.Fatal("a live URL was replaced")
	}
	// Expired, another key, another callback: replaced with a new state.
	for i, change := range []func() error{
		func() error { return s.Ensure(st, cl, "id", spec(), t0.Add(time.Minute)) },
		func() error { return s.Ensure(st, cl, "other", spec(), t0) },
		func() error {
			sp := spec()
			sp.CallbackURL += "2"
			return s.Ensure(st, cl, "id", sp, t0)
		},
	} {
		prev := st.AuthorizationURL
		must(t, change())
		if st.AuthorizationURL == prev || stateOf(st.AuthorizationURL) == stateOf(prev) {
			t.Errorf("case %d: not replaced", i)
		}
	}
	if (&Store{}).ttl() != DefaultTTL {
		t.Error("zero TTL is not the default")
	}
}

func TestWellFormed(t *testing.T) {
	st := &v1alpha1.CloudAuthorizationStatus{}
	must(t, (&Store{}).Issue(st, testClient(t), "id", spec(), t0))
	good := stateOf(st.AuthorizationURL)
	for s, want := range map[string]bool{good: true, "": false, good[:10]: false, good[:42] + "!": false, good + "A": false} {
		if WellFormed(s) != want {
			t.Errorf("WellFormed(%q) = %v", s, !want)
		}
	}
	if IndexValue(&v1alpha1.CloudAuthorization{Status: *st}) != good || IndexValue(&v1alpha1.CloudAuthorization{}) != "" {
		t.Error("IndexValue")
	}
}

func fakeClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	must(t, v1alpha1.AddToScheme(scheme))
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&v1alpha1.CloudAuthorization{}).Build()
}

// The state is single-use and must be live: the second request with one state, an expired state and
// a forged one are all ErrStateGone, and only the first gets its change written.
func TestSpendIsSingleUse(t *testing.T) {
	ca := &v1alpha1.CloudAuthorization{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "photos", UID: "u1"}}
	must(t, (&Store{TTL: time.Minute}).Issue(&ca.Status, testClient(t), "id", spec(), t0))
	state := stateOf(ca.Status.AuthorizationURL)
	c := fakeClient(t, ca)
	now := func() time.Time { return t0.Add(time.Second) }
	spend := func(s string, at func() time.Time) error {
		target := ca.DeepCopy()
		return Spend(context.Background(), c, c, at, target, s, func(st *v1alpha1.CloudAuthorizationStatus, _ time.Time) error {
			st.AuthorizationURL, st.AuthorizationURLExpiresAt = "", nil
			return nil
		})
	}
	forged := "A" + state[1:]
	if forged == state {
		forged = "B" + state[1:]
	}
	if err := spend(forged, now); !errors.Is(err, ErrStateGone) {
		t.Fatalf("forged state: %v", err)
	}
	if err := spend(state, func() time.Time { return t0.Add(time.Minute) }); !errors.Is(err, ErrStateGone) {
		t.Fatalf("expired state: %v", err)
	}
	must(t, spend(state, now))
	if err := spend(state, now); !errors.Is(err, ErrStateGone) {
		t.Fatalf("replayed state: %v", err)
	}
	got := &v1alpha1.CloudAuthorization{}
	must(t, c.Get(context.Background(), client.ObjectKeyFromObject(ca), got))
	if got.Status.AuthorizationURL != "" {
		t.Fatal("the state was not removed")
	}
	// Another object of the same name (deleted and recreated) does not accept the old state.
	other := ca.DeepCopy()
	other.UID = "u2"
	if err := Spend(context.Background(), c, c, now, other, state, func(*v1alpha1.CloudAuthorizationStatus, time.Time) error { return nil }); !errors.Is(err, ErrStateGone) {
		t.Fatalf("other UID: %v", err)
	}
	missing := &v1alpha1.CloudAuthorization{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "gone"}}
	if err := Spend(context.Background(), c, c, now, missing, state, nil); !errors.Is(err, ErrStateGone) {
		t.Fatalf("missing object: %v", err)
	}
}

// PatchStatus is conditional on the resourceVersion read: a stale copy conflicts.
func TestPatchStatusIsConditional(t *testing.T) {
	ca := &v1alpha1.CloudAuthorization{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "photos"}}
	c := fakeClient(t, ca)
	a, b := &v1alpha1.CloudAuthorization{}, &v1alpha1.CloudAuthorization{}
	must(t, c.Get(context.Background(), client.ObjectKeyFromObject(ca), a))
	must(t, c.Get(context.Background(), client.ObjectKeyFromObject(ca), b))
	must(t, PatchStatus(context.Background(), c, a, &v1alpha1.CloudAuthorizationStatus{AuthorizationURL: "x"}))
	if a.Status.AuthorizationURL != "x" || a.ResourceVersion == b.ResourceVersion {
		t.Fatalf("patched copy %+v", a)
	}
	if err := PatchStatus(context.Background(), c, b, &v1alpha1.CloudAuthorizationStatus{AuthorizationURL: "y"}); err == nil {
		t.Fatal("a stale write went through")
	}
	// Nothing changed: no write at all.
	rv := a.ResourceVersion
	must(t, PatchStatus(context.Background(), c, a, a.Status.DeepCopy()))
	if a.ResourceVersion != rv {
		t.Fatal("an unchanged status was written")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
