package secrets

import (
	"context"
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

func tmpl(labels, annotations map[string]string) *v1alpha1.SecretTemplate {
	return &v1alpha1.SecretTemplate{Labels: labels, Annotations: annotations}
}

func wantMeta(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

var managed = map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}

func with(m map[string]string, kv ...string) map[string]string {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// Issue 8 scenario 18: labels or annotations removed from secretTemplate stayed on the Secret (the
// Writer merged the template into what was there). Written by server-side apply with a field owner,
// what the template no longer names goes; what others put there stays.
func TestTemplateKeysRemovedFromTheTemplateDisappear(t *testing.T) {
	f := newAPIFixture(t)
	ctx := t.Context()
	data := map[string][]byte{"token": []byte("t1")}
	if _, err := f.w.Apply(ctx, f.owner, nil, "target", tmpl(map[string]string{"team": "a", "tier": "1"}, map[string]string{"note": "x", "doc": "y"}), data); err != nil {
		t.Fatal(err)
	}
	// Someone else labels the Secret (another controller, kubectl label): not the template's to remove.
	s := f.get("target")
	s.Labels["backup"] = "yes"
	if err := f.c.Update(ctx, s, client.FieldOwner("someone-else")); err != nil {
		t.Fatal(err)
	}
	written, err := f.w.Apply(ctx, f.owner, f.get("target"), "target", tmpl(map[string]string{"team": "b"}, map[string]string{"note": "x"}), data)
	if err != nil || !written {
		t.Fatalf("apply the shrunk template: written %v, %v", written, err)
	}
	got := f.get("target")
	wantMeta(t, "labels", got.Labels, with(managed, "team", "b", "backup", "yes"))
	wantMeta(t, "annotations", got.Annotations, map[string]string{"note": "x"})
	if ref := metav1.GetControllerOf(got); ref == nil || ref.UID != f.owner.UID {
		t.Errorf("controller reference lost: %v", got.OwnerReferences)
	}
	// The template emptied: only the operator's own label is left of what it wrote.
	if _, err := f.w.Apply(ctx, f.owner, got, "target", nil, data); err != nil {
		t.Fatal(err)
	}
	got = f.get("target")
	wantMeta(t, "labels", got.Labels, with(managed, "backup", "yes"))
	wantMeta(t, "annotations", got.Annotations, nil)
}

// Issue 8 scenario 18: a Secret the operator wrote before it used server-side apply (Create and Update:
// every field belongs to an Update manager named after the binary) loses the template keys removed
// since, too: its fields are migrated to the field owner first (client-go's csaupgrade).
func TestSecretWrittenByUpdateMigrates(t *testing.T) {
	f := newAPIFixture(t)
	ctx := t.Context()
	// As the Writer wrote it until now: Create, then Update, with no field manager of its own.
	old := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "target",
		Labels:      with(managed, "team", "a", "tier", "1"),
		Annotations: map[string]string{"note": "x", "doc": "y"}},
		Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"token": []byte("t0")}}
	if err := controllerutil.SetControllerReference(f.owner, old, apiScheme); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	old.Data["token"] = []byte("t1")
	if err := f.c.Update(ctx, old); err != nil {
		t.Fatal(err)
	}
	written, err := f.w.Apply(ctx, f.owner, f.get("target"), "target", tmpl(map[string]string{"team": "a"}, nil), map[string][]byte{"token": []byte("t1")})
	if err != nil || !written {
		t.Fatalf("apply: written %v, %v", written, err)
	}
	got := f.get("target")
	wantMeta(t, "labels", got.Labels, with(managed, "team", "a"))
	wantMeta(t, "annotations", got.Annotations, nil)
	if string(got.Data["token"]) != "t1" {
		t.Errorf("data = %v", got.Data)
	}
	for _, mf := range got.ManagedFields {
		if mf.Operation == metav1.ManagedFieldsOperationUpdate && mf.Manager == legacyFieldManager() {
			t.Errorf("fields still owned by the Update manager %q after the migration", mf.Manager)
		}
	}
}

// The write stays conditional on the resourceVersion it was decided from, keeps the operator's
// bookkeeping annotations it is not told to change, replaces data wholesale (a key someone added
// goes), and writes nothing when nothing changes.
func TestApplyPreconditionsBookkeepingAndNoOp(t *testing.T) {
	f := newAPIFixture(t)
	ctx := t.Context()
	marker, refreshed := v1alpha1.RefreshStartedAnnotation, v1alpha1.RefreshedAtAnnotation
	s, written, err := f.w.Write(ctx, f.owner, nil, "target", Change{
		Template:    tmpl(nil, map[string]string{"note": "x"}),
		Data:        map[string][]byte{"a": []byte("1")},
		Annotations: map[string]string{marker: "m1", refreshed: "r1"},
	})
	if err != nil || !written {
		t.Fatalf("create: %v %v", written, err)
	}
	stale := s.DeepCopy()
	// A template-only change keeps the bookkeeping annotations.
	s, written, err = f.w.Write(ctx, f.owner, s, "target", Change{Template: tmpl(nil, map[string]string{"note": "z"}), Data: s.Data})
	if err != nil || !written {
		t.Fatalf("template change: %v %v", written, err)
	}
	wantMeta(t, "annotations", s.Annotations, map[string]string{"note": "z", marker: "m1", refreshed: "r1"})
	// "" removes one.
	s, written, err = f.w.Write(ctx, f.owner, s, "target", Change{Template: tmpl(nil, map[string]string{"note": "z"}), Data: s.Data, Annotations: map[string]string{marker: ""}})
	if err != nil || !written {
		t.Fatalf("clear marker: %v %v", written, err)
	}
	wantMeta(t, "annotations", f.get("target").Annotations, map[string]string{"note": "z", refreshed: "r1"})
	// Nothing changes: nothing is written.
	rv := f.get("target").ResourceVersion
	if _, written, err = f.w.Write(ctx, f.owner, f.get("target"), "target", Change{Template: tmpl(nil, map[string]string{"note": "z"}), Data: s.Data}); err != nil || written {
		t.Fatalf("no-op write: %v %v", written, err)
	}
	if got := f.get("target").ResourceVersion; got != rv {
		t.Errorf("a no-op write changed the resourceVersion %s -> %s", rv, got)
	}
	// A write decided from a stale read fails instead of overwriting.
	if _, _, err = f.w.Write(ctx, f.owner, stale, "target", Change{Data: map[string][]byte{"a": []byte("2")}}); !apierrors.IsConflict(err) {
		t.Fatalf("stale write: %v, want a conflict", err)
	}
	if got := f.get("target"); string(got.Data["a"]) != "1" {
		t.Fatalf("stored after the stale write: %v", got.Data)
	}
	// A data key someone added by hand is not the operator's to keep: data is replaced wholesale.
	hand := f.get("target")
	hand.Data["extra"] = []byte("e")
	if err := f.c.Update(ctx, hand, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	if _, written, err = f.w.Write(ctx, f.owner, f.get("target"), "target", Change{Template: tmpl(nil, map[string]string{"note": "z"}), Data: map[string][]byte{"a": []byte("1")}}); err != nil || !written {
		t.Fatalf("write over a hand-added key: %v %v", written, err)
	}
	if got := f.get("target"); len(got.Data) != 1 || string(got.Data["a"]) != "1" {
		t.Errorf("data = %v, want only a=1", keys(got.Data))
	}
}

// Adoption takes the data over and keeps the labels and annotations the Secret's author put there.
func TestAdoptionReplacesDataKeepsForeignMetadata(t *testing.T) {
	f := newAPIFixture(t)
	ctx := t.Context()
	boot := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "target",
		Labels: map[string]string{"app": "mine"}, Annotations: map[string]string{v1alpha1.AdoptAnnotation: "true"}},
		Data: map[string][]byte{"refresh_token": []byte("r"), "junk": []byte("j")}}
	if err := f.c.Create(ctx, boot, client.FieldOwner("kubectl-create")); err != nil {
		t.Fatal(err)
	}
	cur, err := f.w.Fresh(ctx, f.owner, "target", func(*corev1.Secret) bool { return true })
	if err != nil || cur == nil {
		t.Fatalf("fresh: %v %v", cur, err)
	}
	if _, written, err := f.w.Write(ctx, f.owner, cur, "target", Change{Data: map[string][]byte{"refresh_token": []byte("r2")}, Adopt: true}); err != nil || !written {
		t.Fatalf("adopt: %v %v", written, err)
	}
	got := f.get("target")
	if len(got.Data) != 1 || string(got.Data["refresh_token"]) != "r2" {
		t.Errorf("data keys = %v, want only refresh_token=r2", keys(got.Data))
	}
	wantMeta(t, "labels", got.Labels, with(managed, "app", "mine"))
	if got.Annotations[v1alpha1.AdoptAnnotation] != "true" {
		t.Errorf("annotations = %v: the author's went", got.Annotations)
	}
	if ref := metav1.GetControllerOf(got); ref == nil || ref.UID != types.UID("uid-owner") {
		t.Errorf("not adopted: %v", got.OwnerReferences)
	}
	_ = context.Background
}

func keys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The Secret the controllers pass in comes from the manager's cache, which keeps only the operator's
// managedFields entries (KeepOwnManagedFields). Migrating such a Secret must not drop the other
// managers' entries on the server, nor their labels.
func TestMigrationFromACachedCopyKeepsOthersOwnership(t *testing.T) {
	f := newAPIFixture(t)
	ctx := t.Context()
	old := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "target",
		Labels: with(managed, "team", "a", "tier", "1")},
		Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"token": []byte("t0")}}
	if err := controllerutil.SetControllerReference(f.owner, old, apiScheme); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Create(ctx, old); err != nil { // as the Writer did before it applied
		t.Fatal(err)
	}
	s := f.get("target")
	s.Labels["backup"] = "yes"
	if err := f.c.Update(ctx, s, client.FieldOwner("someone-else")); err != nil {
		t.Fatal(err)
	}
	cached, err := KeepOwnManagedFields(f.get("target"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.w.Apply(ctx, f.owner, cached.(*corev1.Secret), "target", tmpl(map[string]string{"team": "a"}, nil), old.Data); err != nil {
		t.Fatal(err)
	}
	got := f.get("target")
	wantMeta(t, "labels", got.Labels, with(managed, "team", "a", "backup", "yes"))
	found := false
	for _, mf := range got.ManagedFields {
		found = found || mf.Manager == "someone-else"
	}
	if !found {
		t.Errorf("the migration dropped another manager's managedFields entry: %v", managers(got))
	}
}

func managers(s *corev1.Secret) []string {
	var out []string
	for _, mf := range s.ManagedFields {
		out = append(out, mf.Manager+"/"+string(mf.Operation))
	}
	return out
}

// Emptying a Secret the operator created (the consent Secret once a grant is in hand) is one write:
// the patch that removes the keys the create owns leaves nothing for an apply to do (it was a patch
// and an apply for each of 200 CloudAuthorizations in `make bench`).
func TestRemovingOnlyDataKeysIsOneWrite(t *testing.T) {
	f := newAPIFixture(t)
	ctx := t.Context()
	s, _, err := f.w.Write(ctx, f.owner, nil, "consent", Change{Data: map[string][]byte{"authorization_url": []byte("https://x")}})
	if err != nil {
		t.Fatal(err)
	}
	writes := 0
	ww, err := client.NewWithWatch(apiConfig, client.Options{Scheme: apiScheme})
	if err != nil {
		t.Fatal(err)
	}
	f.w.Client = interceptor.NewClient(ww, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			writes++
			return c.Patch(ctx, obj, patch, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			writes++
			return c.Apply(ctx, obj, opts...)
		},
	})
	emptied, written, err := f.w.Write(ctx, f.owner, s, "consent", Change{Data: map[string][]byte{}})
	if err != nil || !written {
		t.Fatalf("emptying: written %v, %v", written, err)
	}
	got := f.get("consent")
	if len(got.Data) != 0 || writes != 1 || emptied.ResourceVersion != got.ResourceVersion {
		t.Fatalf("after emptying: data %v, %d writes (want 1), returned version %s of %s", got.Data, writes, emptied.ResourceVersion, got.ResourceVersion)
	}
	wantMeta(t, "labels", got.Labels, managed)
	if _, written, err := f.w.Write(ctx, f.owner, got, "consent", Change{Data: map[string][]byte{}}); err != nil || written || writes != 1 {
		t.Fatalf("emptying again: written %v, %v, %d writes", written, err, writes)
	}
	// A link again later is an apply, and emptying it once more still works.
	got, _, err = f.w.Write(ctx, f.owner, got, "consent", Change{Data: map[string][]byte{"authorization_url": []byte("https://y")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.w.Write(ctx, f.owner, got, "consent", Change{Data: map[string][]byte{}}); err != nil || len(f.get("consent").Data) != 0 {
		t.Fatalf("emptying the second link: %v, data %v", err, f.get("consent").Data)
	}
}
