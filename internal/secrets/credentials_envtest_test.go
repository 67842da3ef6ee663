package secrets

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// A reset password goes into the user's credentials Secret by a server-side apply of that one key: the
// user's other keys and metadata stay, and the Secret's managedFields name the operator as the owner of
// exactly the password (issue 8: every Secret write through internal/secrets, with a field owner).
func TestStoreCredentialAppliesOnlyThePassword(t *testing.T) {
	f := newAPIFixture(t)
	ctx := context.Background()
	user := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "uws", Labels: map[string]string{"team": "iot"}},
		Data:       map[string][]byte{v1alpha1.CredentialsKeyUsername: []byte("fleet"), v1alpha1.CredentialsKeyPassword: []byte("Old-Pass1!")},
	}
	if err := f.c.Create(ctx, user, client.FieldOwner("kubectl")); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: f.ns, Name: "uws"}
	if err := f.w.StoreCredential(ctx, key, v1alpha1.CredentialsKeyPassword, []byte("New-Pass2!")); err != nil {
		t.Fatal(err)
	}
	got := f.get("uws")
	if string(got.Data[v1alpha1.CredentialsKeyPassword]) != "New-Pass2!" || string(got.Data[v1alpha1.CredentialsKeyUsername]) != "fleet" ||
		got.Labels["team"] != "iot" || len(got.OwnerReferences) != 0 || got.Labels[v1alpha1.ManagedByLabel] != "" {
		t.Fatalf("the Secret is not the user's with a new password: labels %v, keys %v", got.Labels, len(got.Data))
	}
	var ours *metav1.ManagedFieldsEntry
	for i, e := range got.ManagedFields {
		if e.Manager == FieldOwner {
			ours = &got.ManagedFields[i]
		}
	}
	if ours == nil || ours.Operation != metav1.ManagedFieldsOperationApply {
		t.Fatalf("no apply entry of %s in managedFields: %+v", FieldOwner, got.ManagedFields)
	}
	fields := ours.FieldsV1.GetRawString()
	if !strings.Contains(fields, `"f:password"`) || strings.Contains(fields, `"f:username"`) || strings.Contains(fields, `"f:labels"`) {
		t.Fatalf("the operator owns more or less than the password: %s", fields)
	}
	// Storing the same value again writes nothing.
	rv := got.ResourceVersion
	if err := f.w.StoreCredential(ctx, key, v1alpha1.CredentialsKeyPassword, []byte("New-Pass2!")); err != nil || f.get("uws").ResourceVersion != rv {
		t.Fatalf("a second store wrote again (err %v)", err)
	}
}
