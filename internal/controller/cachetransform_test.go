package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// The cache transform of the custom resources drops kubectl's last-applied-configuration (an object's
// whole applied JSON, read by nothing) and managedFields, and keeps every other annotation: the
// refresh request is read from the cache.
func TestStripAndInternDropsLastAppliedConfiguration(t *testing.T) {
	const applied = `{"apiVersion":"thingspace.credops.io/v1alpha1","kind":"ThingSpaceApp","metadata":{"name":"a","namespace":"ns"},"spec":{"secretName":"t"}}`
	for _, c := range []struct {
		name string
		in   map[string]string
		want map[string]string
	}{
		{"only last-applied: no annotations left", map[string]string{corev1.LastAppliedConfigAnnotation: applied}, nil},
		{"others kept", map[string]string{corev1.LastAppliedConfigAnnotation: applied, v1alpha1.RefreshRequestedAnnotation: "1", "team": "x"},
			map[string]string{v1alpha1.RefreshRequestedAnnotation: "1", "team": "x"}},
		{"without it: unchanged", map[string]string{v1alpha1.RefreshRequestedAnnotation: "1"}, map[string]string{v1alpha1.RefreshRequestedAnnotation: "1"}},
		{"none", nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			app := &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns", Annotations: c.in,
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl-client-side-apply"}}}}
			out, err := stripAndIntern(app)
			if err != nil {
				t.Fatal(err)
			}
			got := out.(*v1alpha1.ThingSpaceApp)
			if len(got.Annotations) != len(c.want) || (c.want == nil) != (got.Annotations == nil) {
				t.Fatalf("annotations %v, want %v", got.Annotations, c.want)
			}
			for k, v := range c.want {
				if got.Annotations[k] != v {
					t.Errorf("annotation %s = %q, want %q", k, got.Annotations[k], v)
				}
			}
			if got.ManagedFields != nil {
				t.Errorf("managedFields kept: %v", got.ManagedFields)
			}
		})
	}
}
