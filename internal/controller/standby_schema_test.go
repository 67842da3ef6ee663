package controller

import (
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Issue 11 §1: the standby key set's fields are validated in the schema, with messages, for both kinds
// that take them.
func TestStandbyFieldsValidatedInSchema(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name, spec, want string // want "" = accepted
	}{
		{"standby with default handover", `{"credentialsSecretRef":{"name":"a"},"standbyCredentialsSecretRef":{"name":"b"},"secretName":"t"}`, ""},
		{"standby with handoverBefore", `{"credentialsSecretRef":{"name":"a"},"standbyCredentialsSecretRef":{"name":"b"},"handoverBefore":"90s","secretName":"t"}`, ""},
		{"same Secret twice", `{"credentialsSecretRef":{"name":"a"},"standbyCredentialsSecretRef":{"name":"a"},"secretName":"t"}`,
			"standbyCredentialsSecretRef must name another Secret than credentialsSecretRef"},
		{"writes into the standby Secret", `{"credentialsSecretRef":{"name":"a"},"standbyCredentialsSecretRef":{"name":"t"},"secretName":"t"}`,
			"secretName must differ from standbyCredentialsSecretRef.name"},
		{"with renewBefore", `{"credentialsSecretRef":{"name":"a"},"standbyCredentialsSecretRef":{"name":"b"},"renewBefore":"5m","secretName":"t"}`,
			"renewBefore is exclusive with standbyCredentialsSecretRef and handoverBefore"},
		{"handoverBefore alone", `{"credentialsSecretRef":{"name":"a"},"handoverBefore":"5m","secretName":"t"}`,
			"handoverBefore needs standbyCredentialsSecretRef"},
		{"handoverBefore zero", `{"credentialsSecretRef":{"name":"a"},"standbyCredentialsSecretRef":{"name":"b"},"handoverBefore":"0s","secretName":"t"}`,
			"handoverBefore must be a positive duration under 30m"},
		{"handoverBefore half an hour", `{"credentialsSecretRef":{"name":"a"},"standbyCredentialsSecretRef":{"name":"b"},"handoverBefore":"30m","secretName":"t"}`,
			"handoverBefore must be a positive duration under 30m"},
	}
	for _, kind := range []string{"ThingSpaceApp", "ClusterThingSpaceApp"} {
		for _, c := range cases {
			var obj client.Object = &v1alpha1.ThingSpaceApp{}
			meta := map[string]string{"namespace": f.ns, "generateName": "standby-"}
			if kind == "ClusterThingSpaceApp" {
				obj = &v1alpha1.ClusterThingSpaceApp{}
				delete(meta, "namespace")
			}
			var spec map[string]any
			must(t, json.Unmarshal([]byte(c.spec), &spec))
			b, _ := json.Marshal(map[string]any{"metadata": meta, "spec": spec})
			must(t, json.Unmarshal(b, obj))
			err := k8s.Create(ctx, obj, client.DryRunAll)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("%s %s: refused: %v", kind, c.name, err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("%s %s: err = %v, want the message %q", kind, c.name, err, c.want)
			}
		}
	}
	// A consumer of a ClusterThingSpaceApp takes neither field.
	consumer := `{"clusterAppRef":{"name":"shared"},"standbyCredentialsSecretRef":{"name":"b"},"secretName":"t"}`
	obj := &v1alpha1.ThingSpaceApp{}
	var spec map[string]any
	must(t, json.Unmarshal([]byte(consumer), &spec))
	b, _ := json.Marshal(map[string]any{"metadata": map[string]string{"namespace": f.ns, "generateName": "standby-"}, "spec": spec})
	must(t, json.Unmarshal(b, obj))
	if err := k8s.Create(ctx, obj, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "clusterAppRef is exclusive with standbyCredentialsSecretRef and handoverBefore") {
		t.Errorf("consumer with a standby key set: err = %v, want the clusterAppRef message", err)
	}
}
