package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

func TestSplit(t *testing.T) {
	cluster := map[string]bool{"/namespaces": true, "example.io/widgets": true, "example.io/widgets/status": true,
		"authentication.k8s.io/tokenreviews": true}
	isCluster := func(g, r string) bool { return cluster[g+"/"+r] }
	rule := func(groups, resources, verbs []string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: groups, Resources: resources, Verbs: verbs}
	}
	get := []string{"get"}
	in := []rbacv1.PolicyRule{
		rule([]string{""}, []string{"secrets"}, []string{"get", "list"}),
		rule([]string{""}, []string{"namespaces"}, get),
		rule([]string{"example.io"}, []string{"gadgets", "widgets", "gadgets/status", "widgets/status"}, get),
		rule([]string{"authentication.k8s.io"}, []string{"tokenreviews"}, []string{"create"}),
		{NonResourceURLs: []string{"/metrics"}, Verbs: get},
	}
	ns, cl := split(in, isCluster)
	wantNS := []rbacv1.PolicyRule{
		rule([]string{""}, []string{"secrets"}, []string{"get", "list"}),
		rule([]string{"example.io"}, []string{"gadgets", "gadgets/status"}, get),
	}
	wantCl := []rbacv1.PolicyRule{
		rule([]string{""}, []string{"namespaces"}, get),
		rule([]string{"example.io"}, []string{"widgets", "widgets/status"}, get),
		rule([]string{"authentication.k8s.io"}, []string{"tokenreviews"}, []string{"create"}),
		{NonResourceURLs: []string{"/metrics"}, Verbs: get},
	}
	if !reflect.DeepEqual(ns, wantNS) {
		t.Errorf("namespaced = %+v\nwant %+v", ns, wantNS)
	}
	if !reflect.DeepEqual(cl, wantCl) {
		t.Errorf("cluster = %+v\nwant %+v", cl, wantCl)
	}
}

// The checked-in split is what rbacsplit writes from the current role.yaml and CRDs (`make manifests`),
// and the two halves hold every rule of role.yaml's, no more.
func TestCheckedInSplitIsCurrent(t *testing.T) {
	root := filepath.Join("..", "..")
	out := t.TempDir()
	if err := run(filepath.Join(root, "config/rbac/role.yaml"), filepath.Join(root, "config/crd/bases"), out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"manager_role.yaml", "manager_cluster_role.yaml"} {
		want, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, "config/watch-namespaces/rbac", f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("config/watch-namespaces/rbac/%s is not what rbacsplit writes (%v): run `make manifests`", f, err)
		}
	}

	triples := func(rules []rbacv1.PolicyRule) map[string]bool {
		out := map[string]bool{}
		for _, r := range rules {
			for _, v := range r.Verbs {
				for _, u := range r.NonResourceURLs {
					out["url "+u+" "+v] = true
				}
				for _, g := range r.APIGroups {
					for _, res := range r.Resources {
						out[g+"/"+res+" "+v] = true
					}
				}
			}
		}
		return out
	}
	var all rbacv1.ClusterRole
	var ns rbacv1.Role
	var cl rbacv1.ClusterRole
	for p, into := range map[string]any{"config/rbac/role.yaml": &all, "config/watch-namespaces/rbac/manager_role.yaml": &ns,
		"config/watch-namespaces/rbac/manager_cluster_role.yaml": &cl} {
		if err := readYAML(filepath.Join(root, p), into); err != nil {
			t.Fatal(err)
		}
	}
	union := triples(ns.Rules)
	for k := range triples(cl.Rules) {
		union[k] = true
	}
	if want := triples(all.Rules); !reflect.DeepEqual(union, want) {
		t.Errorf("Role + ClusterRole grant %v, role.yaml %v", union, want)
	}
	for k := range triples(ns.Rules) {
		if strings.HasPrefix(k, "url ") || strings.Contains(k, "tokenreviews") || strings.Contains(k, "subjectaccessreviews") {
			t.Errorf("the namespaced Role holds %s", k)
		}
	}
}
