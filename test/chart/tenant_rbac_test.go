package chart

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// The tenant sample (config/samples/tenant, README "Who may set what") grants every namespaced kind
// of the API, with status read-only, and nothing else: no Secrets, no cluster-scoped kind, no other
// group. A namespaced kind added to the API without the sample following fails here.
func TestTenantRoleCoversTheNamespacedKindsOnly(t *testing.T) {
	data, err := os.ReadFile(repoPath(t, "config/samples/tenant/role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(data)
	if err != nil || len(objs) != 1 {
		t.Fatalf("role.yaml: %d objects, %v", len(objs), err)
	}
	var role rbacv1.Role
	into(t, objs[0], &role)

	crds, err := filepath.Glob(repoPath(t, "config/crd/bases/*.yaml"))
	if err != nil || len(crds) < 3 {
		t.Fatalf("CRDs: %v %v", crds, err)
	}
	var namespaced, cluster []string
	for _, path := range crds {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		o, err := decode(b)
		if err != nil || len(o) != 1 {
			t.Fatalf("%s: %v", path, err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		into(t, o[0], &crd)
		if crd.Spec.Scope == apiextensionsv1.NamespaceScoped {
			namespaced = append(namespaced, crd.Spec.Names.Plural)
		} else {
			cluster = append(cluster, crd.Spec.Names.Plural)
		}
	}
	granted := map[string][]string{} // resource -> verbs
	for _, r := range role.Rules {
		if !slices.Equal(r.APIGroups, []string{"thingspace.credops.io"}) || len(r.ResourceNames) > 0 {
			t.Errorf("rule %+v: only thingspace.credops.io, without resourceNames", r)
		}
		for _, res := range r.Resources {
			granted[res] = append(granted[res], r.Verbs...)
		}
	}
	for _, kind := range namespaced {
		if v := granted[kind]; !slices.Contains(v, "create") || !slices.Contains(v, "update") || !slices.Contains(v, "delete") {
			t.Errorf("%s: verbs %v, want the tenant to manage them", kind, v)
		}
		if v := granted[kind+"/status"]; !slices.Equal(v, []string{"get"}) {
			t.Errorf("%s/status: verbs %v, want get only (the operator writes status)", kind, v)
		}
		delete(granted, kind)
		delete(granted, kind+"/status")
	}
	for res := range granted {
		t.Errorf("the tenant Role grants %s (cluster-scoped kinds %v are the platform team's)", res, cluster)
	}
}
