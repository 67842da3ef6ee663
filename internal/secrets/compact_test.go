package secrets

import (
	"bytes"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
)

// cached is the Secret name as the manager's cache holds it: through CacheTransform.
func (f *apiFixture) cached(name string) *corev1.Secret {
	f.t.Helper()
	out, err := CacheTransform([]string{"ThingSpaceApp"})(f.get(name))
	if err != nil {
		f.t.Fatal(err)
	}
	return out.(*corev1.Secret)
}

// sameOwnership fails unless the cached copy's managedFields say what the full copy's do about every
// label and annotation on it, which is all Write asks them (ownershipOf).
func sameOwnership(t *testing.T, full, cached *corev1.Secret) {
	t.Helper()
	of, oc := ownershipOf(full), ownershipOf(cached)
	if of.known != oc.known {
		t.Fatalf("known: full %v, cached %v", of.known, oc.known)
	}
	for k := range full.Labels {
		p := labelPath(k)
		if of.all.Has(p) != oc.all.Has(p) || of.applied.Has(p) != oc.applied.Has(p) || of.updated.Has(p) != oc.updated.Has(p) {
			t.Errorf("label %s: the cached managedFields disagree with the full ones", k)
		}
	}
	for k := range full.Annotations {
		p := annotationPath(k)
		if of.all.Has(p) != oc.all.Has(p) || of.applied.Has(p) != oc.applied.Has(p) || of.updated.Has(p) != oc.updated.Has(p) {
			t.Errorf("annotation %s: the cached managedFields disagree with the full ones", k)
		}
	}
	for _, e := range cached.ManagedFields {
		if !e.Time.IsZero() || e.FieldsV1 == nil || bytes.Contains(e.FieldsV1.GetRawBytes(), []byte("f:data")) {
			t.Errorf("cached entry not compact: %+v", e)
		}
	}
}

// The cache keeps the operator's managedFields entries compact (labels and annotations only): the
// template keys removed from a template still disappear when the Writer starts from the cached copy,
// and what others put there stays.
func TestCompactManagedFieldsStillTellWhatTheOperatorWrote(t *testing.T) {
	f := newAPIFixture(t)
	ctx := t.Context()
	data := map[string][]byte{"token": []byte("t1")}
	if _, err := f.w.Apply(ctx, f.owner, nil, "target", tmpl(map[string]string{"team": "a", "tier": "1"}, map[string]string{"note": "x", "doc": "y"}), data); err != nil {
		t.Fatal(err)
	}
	s := f.get("target")
	s.Labels["backup"] = "yes"
	s.Annotations["theirs"] = "z"
	if err := f.c.Update(ctx, s, client.FieldOwner("someone-else")); err != nil {
		t.Fatal(err)
	}
	sameOwnership(t, f.get("target"), f.cached("target"))
	written, err := f.w.Apply(ctx, f.owner, f.cached("target"), "target", tmpl(map[string]string{"team": "b"}, map[string]string{"note": "x"}), data)
	if err != nil || !written {
		t.Fatalf("apply the shrunk template from the cached copy: written %v, %v", written, err)
	}
	got := f.get("target")
	wantMeta(t, "labels", got.Labels, with(managed, "team", "b", "backup", "yes"))
	wantMeta(t, "annotations", got.Annotations, map[string]string{"note": "x", "theirs": "z"})
	if written, err := f.w.Apply(ctx, f.owner, f.cached("target"), "target", tmpl(map[string]string{"team": "b"}, map[string]string{"note": "x"}), data); err != nil || written {
		t.Fatalf("nothing changed, from the cached copy: written %v, %v", written, err)
	}
}

// A Secret written by Update (before the operator applied) is told apart from the cached copy too, and
// migrated.
func TestCompactManagedFieldsKeepTheUpdateWritersEntries(t *testing.T) {
	f := newAPIFixture(t)
	ctx := t.Context()
	old := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "target",
		Labels: with(managed, "team", "a", "tier", "1"), Annotations: map[string]string{"note": "x"}},
		Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"token": []byte("t0")}}
	if err := controllerutil.SetControllerReference(f.owner, old, apiScheme); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	sameOwnership(t, f.get("target"), f.cached("target"))
	if _, err := f.w.Apply(ctx, f.owner, f.cached("target"), "target", tmpl(map[string]string{"team": "a"}, nil), old.Data); err != nil {
		t.Fatal(err)
	}
	got := f.get("target")
	wantMeta(t, "labels", got.Labels, with(managed, "team", "a"))
	wantMeta(t, "annotations", got.Annotations, nil)
	sameOwnership(t, got, f.cached("target"))
}
