package secrets

import (
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// A cluster-scoped owner's Secret goes into the namespace it is placed in, controlled by the owner
// itself (its kind, no namespace), and is found there again as its own.
func TestInNamespaceOwnsSecretsOfAClusterScopedOwner(t *testing.T) {
	f := newAPIFixture(t)
	ctx := t.Context()
	cluster := &v1alpha1.ClusterThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: "platform", UID: "uid-cluster"}}
	owner := InNamespace(cluster, f.ns)
	if _, written, err := f.w.Write(ctx, owner, nil, "tok", Change{Data: map[string][]byte{"access_token": []byte("t")}}); err != nil || !written {
		t.Fatalf("write: written %v, %v", written, err)
	}
	s := f.get("tok")
	ref := metav1.GetControllerOf(s)
	if ref == nil || ref.Kind != "ClusterThingSpaceApp" || ref.Name != "platform" || ref.UID != cluster.UID {
		t.Fatalf("controller reference %+v, want the ClusterThingSpaceApp", ref)
	}
	got, err := f.w.Get(ctx, owner, "tok")
	if err != nil || got == nil {
		t.Fatalf("get: %v, %v", got, err)
	}
	// A namespaced object of the same name in that namespace does not own it.
	app := &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "platform", UID: "uid-app"}}
	if _, err := f.w.Get(ctx, app, "tok"); !isConflictErr(err) {
		t.Fatalf("a ThingSpaceApp of the same name: %v, want a conflict", err)
	}
}

func isConflictErr(err error) bool {
	_, ok := errors.AsType[*ConflictError](err)
	return ok
}
