package secrets

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

func TestStoreCredential(t *testing.T) {
	key := types.NamespacedName{Namespace: "ns", Name: "uws"}
	user := func() *corev1.Secret {
		return secret("uws", map[string][]byte{v1alpha1.CredentialsKeyUsername: []byte("fleet"), v1alpha1.CredentialsKeyPassword: []byte("Old-Pass1")},
			func(s *corev1.Secret) { s.Labels = map[string]string{"team": "iot"} })
	}
	cases := []struct {
		name      string
		existing  *corev1.Secret
		failures  int // update failures before one lands
		wantErr   bool
		wantValue string
		// replaces: StoreCredentialReplacing over this value (else StoreCredential).
		replaces       string
		wantSuperseded bool
	}{
		{name: "writes the one key", existing: user(), wantValue: "New-Pass2"},
		{name: "already there", existing: secret("uws", map[string][]byte{v1alpha1.CredentialsKeyPassword: []byte("New-Pass2")}), wantValue: "New-Pass2"},
		{name: "survives a blip", existing: user(), failures: 2, wantValue: "New-Pass2"},
		{name: "gives up on an outage, naming no value", existing: user(), failures: 100, wantErr: true, wantValue: "Old-Pass1"},
		{name: "a missing Secret is an error", wantErr: true},
		{name: "replacing: over the value it replaces", existing: user(), replaces: "Old-Pass1", wantValue: "New-Pass2"},
		{name: "replacing: already there", existing: secret("uws", map[string][]byte{v1alpha1.CredentialsKeyPassword: []byte("New-Pass2")}),
			replaces: "Old-Pass1", wantValue: "New-Pass2"},
		{name: "replacing: a newer value stays", existing: secret("uws", map[string][]byte{v1alpha1.CredentialsKeyPassword: []byte("Newer-Pass3")}),
			replaces: "Old-Pass1", wantErr: true, wantSuperseded: true, wantValue: "Newer-Pass3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var objs []client.Object
			if tc.existing != nil {
				objs = append(objs, tc.existing)
			}
			w, c := newWriter(t, objs...)
			failures := tc.failures
			w.Client = interceptor.NewClient(c.(client.WithWatch), interceptor.Funcs{
				Apply: func(ctx context.Context, cl client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
					if failures > 0 {
						failures--
						return apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, key.Name, nil)
					}
					return cl.Apply(ctx, obj, opts...)
				},
			})
			var err error
			if tc.replaces != "" {
				err = w.StoreCredentialReplacing(context.Background(), key, v1alpha1.CredentialsKeyPassword, []byte(tc.replaces), []byte("New-Pass2"))
			} else {
				err = w.StoreCredential(context.Background(), key, v1alpha1.CredentialsKeyPassword, []byte("New-Pass2"))
			}
			if (err != nil) != tc.wantErr || errors.Is(err, ErrSuperseded) != tc.wantSuperseded {
				t.Fatalf("err = %v, want error %v (superseded %v)", err, tc.wantErr, tc.wantSuperseded)
			}
			if err != nil && strings.Contains(err.Error(), "New-Pass2") {
				t.Fatal("the error quotes the value")
			}
			if tc.existing == nil {
				return
			}
			got := &corev1.Secret{}
			if err := c.Get(context.Background(), key, got); err != nil {
				t.Fatal(err)
			}
			if string(got.Data[v1alpha1.CredentialsKeyPassword]) != tc.wantValue {
				t.Fatalf("password = %q, want %q", got.Data[v1alpha1.CredentialsKeyPassword], tc.wantValue)
			}
			if tc.existing.Labels["team"] != "" && (got.Labels["team"] != "iot" || string(got.Data[v1alpha1.CredentialsKeyUsername]) != "fleet" ||
				got.Labels[v1alpha1.ManagedByLabel] != "" || len(got.OwnerReferences) != 0) {
				t.Fatalf("other content changed: %+v", got)
			}
		})
	}
}
