package secrets

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// A cluster-scoped owner's Secrets live in ClusterNamespace, controlled by it; Delete removes only a
// Secret it owns, and only the version read.
func TestClusterOwnerSecretsAndDelete(t *testing.T) {
	f := newAPIFixture(t)
	ctx := t.Context()
	f.w.ClusterNamespace = f.ns
	cm := &v1alpha1.ClusterM2MSession{ObjectMeta: metav1.ObjectMeta{Name: "fleet", UID: "uid-cm"}}
	s, written, err := f.w.Write(ctx, cm, nil, "fleet-session", Change{Data: map[string][]byte{"a": []byte("1")}})
	if err != nil || !written || s.Namespace != f.ns {
		t.Fatalf("create: %v %v %v", s, written, err)
	}
	if ref := metav1.GetControllerOf(s); ref == nil || ref.Kind != "ClusterM2MSession" || ref.UID != cm.UID {
		t.Fatalf("controller reference: %+v", ref)
	}
	got, err := f.w.Get(ctx, cm, "fleet-session")
	if err != nil || got == nil || got.Namespace != f.ns {
		t.Fatalf("Get: %v %v", got, err)
	}
	if err := f.w.Delete(ctx, f.owner, got); err == nil {
		t.Fatal("Delete by another owner succeeded")
	}
	stale := got.DeepCopy()
	if _, _, err := f.w.Write(ctx, cm, got, "fleet-session", Change{Data: map[string][]byte{"a": []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	if err := f.w.Delete(ctx, cm, stale); !apierrors.IsConflict(err) {
		t.Fatalf("Delete of a stale version: %v, want a conflict", err)
	}
	if err := f.w.Delete(ctx, cm, f.get("fleet-session")); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Get(ctx, client.ObjectKeyFromObject(got), &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after Delete: %v", err)
	}
	if err := f.w.Delete(ctx, cm, got); err != nil {
		t.Fatalf("Delete of a gone Secret: %v", err)
	}
}
