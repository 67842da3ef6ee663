package controller

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Issue 9 §2: caBundle is bounded in the schema (64 KiB of PEM), for every kind that takes one, with a
// message; the bound itself is accepted.
func TestCABundleBoundedInSchema(t *testing.T) {
	f := newFixture(t)
	// From JSON, so that the objects do not depend on which spec fields are pointers.
	spec := map[string]string{
		"ThingSpaceApp":      `{"credentialsSecretRef":{"name":"creds"},"secretName":"token"}`,
		"CloudAuthorization": `{"credentialsSecretRef":{"name":"creds"},"secretName":"tokens","callbackURL":"https://example.com/cb"}`,
		// The cluster-scoped kind inlines ThingSpaceAppSpec, bound included.
		"ClusterThingSpaceApp": `{"credentialsSecretRef":{"name":"creds"},"secretName":"token"}`,
	}
	newObj := func(kind string, bundle []byte) client.Object {
		var obj client.Object = &v1alpha1.ThingSpaceApp{}
		meta := map[string]string{"namespace": f.ns, "generateName": "ca-"}
		switch kind {
		case "CloudAuthorization":
			obj = &v1alpha1.CloudAuthorization{}
		case "ClusterThingSpaceApp":
			obj = &v1alpha1.ClusterThingSpaceApp{}
			delete(meta, "namespace")
		}
		b, _ := json.Marshal(map[string]any{"metadata": meta})
		must(t, json.Unmarshal(b, obj))
		var s map[string]any
		must(t, json.Unmarshal([]byte(spec[kind]), &s))
		s["caBundle"] = bundle // []byte marshals as base64, as the API wants it
		b, _ = json.Marshal(map[string]any{"spec": s})
		must(t, json.Unmarshal(b, obj))
		return obj
	}
	for kind := range spec {
		if err := k8s.Create(ctx, newObj(kind, bytes.Repeat([]byte("a"), 64<<10)), client.DryRunAll); err != nil {
			t.Errorf("%s: a 64 KiB caBundle refused: %v", kind, err)
		}
		for _, n := range []int{64<<10 + 1, 1 << 20} {
			err := k8s.Create(ctx, newObj(kind, bytes.Repeat([]byte("a"), n)), client.DryRunAll)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "caBundle") {
				t.Errorf("%s: caBundle of %d bytes: err = %v, want Invalid naming caBundle", kind, n, err)
			}
			if n == 64<<10+1 && (err == nil || !strings.Contains(err.Error(), "caBundle must be at most 64 KiB of PEM")) {
				t.Errorf("%s: caBundle of %d bytes: err = %v, want the schema's message", kind, n, err)
			}
		}
	}
}
