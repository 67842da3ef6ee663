package secrets

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

func TestOwnerKindsAreTheGroupsObjectKinds(t *testing.T) {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	kinds := OwnerKinds(s)
	for _, want := range []string{"CloudAuthorization", "M2MSession", "ThingSpaceApp"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("OwnerKinds = %v, lacks %s", kinds, want)
		}
	}
	for _, k := range kinds {
		if k == "WatchEvent" || k == "ListOptions" || k == "ThingSpaceAppList" {
			t.Errorf("OwnerKinds = %v holds %s, not an object kind", kinds, k)
		}
	}
}

func TestCacheTransformKeepsDataOnlyOfOperatorControlledSecrets(t *testing.T) {
	kinds := []string{"ThingSpaceApp", "M2MSession", "CloudAuthorization"}
	ref := func(apiVersion, kind string, controller bool) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: "o", UID: "u", Controller: ptr.To(controller)}
	}
	ours := v1alpha1.GroupVersion.String()
	for _, tc := range []struct {
		name string
		refs []metav1.OwnerReference
		keep bool
	}{
		{"controlled by a ThingSpaceApp", []metav1.OwnerReference{ref(ours, "ThingSpaceApp", true)}, true},
		{"controlled by a CloudAuthorization", []metav1.OwnerReference{ref(ours, "CloudAuthorization", true)}, true},
		{"controlled by another version of the group", []metav1.OwnerReference{ref("thingspace.credops.io/v1", "M2MSession", true)}, true},
		{"label only", nil, false},
		{"owned but not as controller", []metav1.OwnerReference{ref(ours, "ThingSpaceApp", false)}, false},
		{"controlled by a kind of another group", []metav1.OwnerReference{ref("apps/v1", "Deployment", true)}, false},
		{"controlled by an unknown kind of the group", []metav1.OwnerReference{ref(ours, "Impostor", true)}, false},
		{"controlled by our kind name in another group", []metav1.OwnerReference{ref("evil.example.com/v1", "ThingSpaceApp", true)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", OwnerReferences: tc.refs,
					Labels:      map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue},
					Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{big}"},
					ManagedFields: []metav1.ManagedFieldsEntry{{Manager: FieldOwner, Operation: metav1.ManagedFieldsOperationApply},
						{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}}},
				Data: map[string][]byte{"blob": []byte("payload")},
			}
			out, err := CacheTransform(kinds)(in)
			if err != nil {
				t.Fatal(err)
			}
			s := out.(*corev1.Secret)
			if got := s.Data != nil; got != tc.keep {
				t.Errorf("data kept = %v, want %v", got, tc.keep)
			}
			if got := s.Annotations != nil; got != tc.keep {
				t.Errorf("annotations kept = %v, want %v", got, tc.keep)
			}
			wantMF := 0
			if tc.keep {
				wantMF = 1 // the operator's entry only
			}
			if len(s.ManagedFields) != wantMF {
				t.Errorf("managedFields = %d entries, want %d", len(s.ManagedFields), wantMF)
			}
			if s.Name != "s" || s.Labels[v1alpha1.ManagedByLabel] == "" || len(s.OwnerReferences) != len(tc.refs) {
				t.Errorf("metadata lost: %+v", s.ObjectMeta)
			}
		})
	}
}
