package controller

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// indexRecorder is a cache whose informer keeps the indexers registered on it.
type indexRecorder struct {
	cache.Informer
	client.FieldIndexer
	indexers toolscache.Indexers
}

func (r *indexRecorder) GetInformer(context.Context, client.Object, ...cache.InformerGetOption) (cache.Informer, error) {
	return r, nil
}

func (r *indexRecorder) AddIndexers(i toolscache.Indexers) error {
	for k, v := range i {
		r.indexers[k] = v
	}
	return nil
}

// The Secret-name indexes file a value once, under its namespace (controller-runtime's IndexField
// would add an all-namespaces key too, a set per object nobody lists); the cluster-scoped kinds and the
// cluster-wide indexes keep controller-runtime's keys.
func TestSecretIndexesFileAValueOnceInItsNamespace(t *testing.T) {
	rec := &indexRecorder{indexers: toolscache.Indexers{}}
	err := indexFields(rec, &v1alpha1.ThingSpaceApp{}, map[string]func(*v1alpha1.ThingSpaceApp) string{
		indexCredentialsSecret: func(a *v1alpha1.ThingSpaceApp) string { return a.Spec.CredentialsSecretRef.NameOrEmpty() },
		indexTargetSecret:      func(a *v1alpha1.ThingSpaceApp) string { return a.Spec.SecretName },
	})
	if err != nil {
		t.Fatal(err)
	}
	idx := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, rec.indexers)
	app := &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"},
		Spec: v1alpha1.ThingSpaceAppSpec{CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "creds"}, SecretName: "token"}}
	if err := idx.Add(app); err != nil {
		t.Fatal(err)
	}
	for field, value := range map[string]string{indexCredentialsSecret: "creds", indexTargetSecret: "token"} {
		keys := idx.ListIndexFuncValues("field:" + field)
		if len(keys) != 1 || keys[0] != "ns/"+value {
			t.Errorf("%s: index keys %v, want only ns/%s", field, keys, value)
		}
		// What controller-runtime's cache reader asks for MatchingFields in a namespace.
		got, err := idx.ByIndex("field:"+field, namespacedKey("ns", value))
		if err != nil || len(got) != 1 {
			t.Errorf("%s: %d objects (%v)", field, len(got), err)
		}
	}
	cluster := &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: "cluster-scoped"},
		Spec: v1alpha1.ThingSpaceAppSpec{SecretName: "t"}}
	if err := idx.Add(cluster); err != nil {
		t.Fatal(err)
	}
	if got, _ := idx.ByIndex("field:"+indexTargetSecret, "__all_namespaces/t"); len(got) != 1 {
		t.Errorf("an object without a namespace: %d under the all-namespaces key", len(got))
	}
}
