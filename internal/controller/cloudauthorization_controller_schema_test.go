package controller

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Issue 8 scenario 16: secretTemplate could set the operator's own annotations (a planted
// refresh-started-at read as an interrupted refresh dropped the grant). The API server refuses
// every key under v1alpha1.ReservedPrefix, and the managed-by label key, in labels and annotations,
// with a message that says why; the SecretTemplate type is shared, so every kind refuses them.
func TestIssue8Scenario16ReservedTemplateMetadataRefused(t *testing.T) {
	f := newCloudFixture(t, 0)
	reserved := []string{
		v1alpha1.RefreshStartedAnnotation,
		v1alpha1.RefreshedAtAnnotation,
		v1alpha1.ReservedPrefix + "anything",
		v1alpha1.ManagedByLabel,
	}
	cloud := func(tpl *v1alpha1.SecretTemplate) client.Object {
		return &v1alpha1.CloudAuthorization{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, GenerateName: "tpl-"},
			Spec: v1alpha1.CloudAuthorizationSpec{
				CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: "creds"},
				CallbackURL:          "https://example.com/Callback",
				SecretName:           "tokens",
				SecretTemplate:       tpl,
			},
		}
	}
	app := func(tpl *v1alpha1.SecretTemplate) client.Object {
		return &v1alpha1.ThingSpaceApp{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, GenerateName: "tpl-"},
			Spec: v1alpha1.ThingSpaceAppSpec{
				CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "creds"},
				SecretName:           "token",
				SecretTemplate:       tpl,
			},
		}
	}
	for _, kind := range []struct {
		name string
		make func(*v1alpha1.SecretTemplate) client.Object
	}{{"CloudAuthorization", cloud}, {"ThingSpaceApp", app}} {
		for _, key := range reserved {
			for _, tpl := range []*v1alpha1.SecretTemplate{
				{Annotations: map[string]string{"ok": "1", key: "2026-01-01T00:00:00Z"}},
				{Labels: map[string]string{key: "x"}},
			} {
				err := k8s.Create(context.Background(), kind.make(tpl))
				if err == nil {
					t.Errorf("%s: accepted secretTemplate %+v", kind.name, *tpl)
					continue
				}
				if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "reserved for the operator") {
					t.Errorf("%s %+v: err = %v, want Invalid saying the key is reserved", kind.name, *tpl, err)
				}
			}
		}
		// Look-alikes outside the prefix stay allowed.
		must(t, k8s.Create(context.Background(), kind.make(&v1alpha1.SecretTemplate{
			Labels:      map[string]string{"team": "a", "example.com/managed-by": "x"},
			Annotations: map[string]string{"credops.io/note": "1", "other.thingspace.credops.io.example/x": "y"},
		})))
	}
}
