package consent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func cloudAuth() *v1alpha1.CloudAuthorization {
	return &v1alpha1.CloudAuthorization{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "photos", UID: "u1"},
		Spec: v1alpha1.CloudAuthorizationSpec{CallbackURL: "https://op.example/base/oauth2/callback?x=1", DeviceID: "d"}}
}

// Ensure issues a link at the operator's start endpoint beside the callback, keeps it while it is live
// and matches status and spec, and replaces it otherwise. The status holds neither the token nor the
// state, only the hash of the state, which the token derives.
func TestEnsure(t *testing.T) {
	s, ca := &Store{TTL: time.Minute}, cloudAuth()
	st := &v1alpha1.CloudAuthorizationStatus{}
	link, fresh, err := s.Ensure(st, ca, "", t0)
	must(t, err)
	tok := TokenOf(link)
	if !fresh || !strings.HasPrefix(link, "https://op.example/base/oauth2/start?state=") || !WellFormed(tok) ||
		st.ConsentSecretName != "photos-consent" || !st.ConsentExpiresAt.Time.Equal(t0.Add(time.Minute)) || st.ConsentStateHash != Hash(State(tok)) {
		t.Fatalf("link %q, fresh %v, status %+v", link, fresh, st)
	}
	for _, v := range []string{tok, State(tok)} {
		if strings.Contains(st.ConsentStateHash, v) || st.ConsentStateHash == v {
			t.Fatal("the status carries the token or the state")
		}
	}
	if State(tok) == tok || Hash(State(tok)) == State(tok) || !WellFormed(State(tok)) || !WellFormed(Hash(State(tok))) {
		t.Fatal("derivations")
	}
	// Live, the one status is of, same callback: kept.
	again, fresh, err := s.Ensure(st, ca, link, t0.Add(59*time.Second))
	must(t, err)
	if fresh || again != link {
		t.Fatal("a live link was replaced")
	}
	// Expired, another link in the Secret, no link, another callback: replaced.
	for i, change := range []func() (string, bool, error){
		func() (string, bool, error) { return s.Ensure(st, ca, link, t0.Add(time.Minute)) },
		func() (string, bool, error) { return s.Ensure(st, ca, strings.Replace(link, tok, "A"+tok[1:], 1), t0) },
		func() (string, bool, error) { return s.Ensure(st, ca, "", t0) },
		func() (string, bool, error) {
			other := cloudAuth()
			other.Spec.CallbackURL = "https://other.example/oauth2/callback"
			return s.Ensure(st, other, link, t0)
		},
	} {
		prevHash := st.ConsentStateHash
		got, fresh, err := change()
		must(t, err)
		if !fresh || got == link || st.ConsentStateHash == prevHash {
			t.Errorf("case %d: not replaced", i)
		}
		link = got
		tok = TokenOf(link)
		st.ConsentExpiresAt = &metav1.Time{Time: t0.Add(time.Minute)}
	}
	if (&Store{}).ttl() != DefaultTTL {
		t.Error("zero TTL is not the default")
	}
	Clear(st)
	if Pending(st, t0) || st.ConsentStateHash != "" {
		t.Error("Clear")
	}
}

func TestWellFormed(t *testing.T) {
	_, _, _ = (&Store{}).Ensure(&v1alpha1.CloudAuthorizationStatus{}, cloudAuth(), "", t0)
	link, _, err := (&Store{}).Ensure(&v1alpha1.CloudAuthorizationStatus{}, cloudAuth(), "", t0)
	must(t, err)
	good := TokenOf(link)
	for s, want := range map[string]bool{good: true, "": false, good[:10]: false, good[:42] + "!": false, good + "A": false} {
		if WellFormed(s) != want {
			t.Errorf("WellFormed(%q) = %v", s, !want)
		}
	}
	if TokenOf("https://x/oauth2/start?state=short") != "" || TokenOf("%zz") != "" {
		t.Error("TokenOf accepted a malformed link")
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
	ca := cloudAuth()
	link, _, err := (&Store{TTL: time.Minute}).Ensure(&ca.Status, ca, "", t0)
	must(t, err)
	state := Hash(State(TokenOf(link)))
	c := fakeClient(t, ca)
	now := func() time.Time { return t0.Add(time.Second) }
	spend := func(s string, at func() time.Time) error {
		target := ca.DeepCopy()
		return Spend(context.Background(), c, c, at, target, s, func(st *v1alpha1.CloudAuthorizationStatus, _ time.Time) error {
			Clear(st)
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
	if got.Status.ConsentStateHash != "" {
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
	must(t, PatchStatus(context.Background(), c, a, &v1alpha1.CloudAuthorizationStatus{ConsentStateHash: "x"}))
	if a.Status.ConsentStateHash != "x" || a.ResourceVersion == b.ResourceVersion {
		t.Fatalf("patched copy %+v", a)
	}
	if err := PatchStatus(context.Background(), c, b, &v1alpha1.CloudAuthorizationStatus{ConsentStateHash: "y"}); err == nil {
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
