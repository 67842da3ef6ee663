package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// The chart's files/ are copies `make manifests` writes; a hand edit, or a marker change without
// `make manifests`, makes Helm and kustomize install different operators.
func TestChartFilesAreCopiesOfConfig(t *testing.T) {
	for _, c := range []struct{ from, to string }{
		{"config/crd/bases/*.yaml", "files/crds"},
		{"config/rbac/role.yaml", "files/rbac"},
		{"config/rbac/leader_election_role.yaml", "files/rbac"},
		{"config/rbac/metrics_reader_role.yaml", "files/rbac"},
		{"config/watch-namespaces/rbac/manager_role.yaml", "files/watch-namespaces"},
		{"config/watch-namespaces/rbac/manager_cluster_role.yaml", "files/watch-namespaces"},
		{"config/rbac/*_editor_role.yaml", "files/rbac"},
		{"config/rbac/*_viewer_role.yaml", "files/rbac"},
		{"config/prometheus/thingspace-operator.rules.yaml", "files/prometheus"},
		{"config/grafana/*.json", "files/grafana"},
		{"config/argocd/argocd-cm-patch.yaml", "files/argocd"},
	} {
		sources, err := filepath.Glob(repoPath(t, c.from))
		if err != nil || len(sources) == 0 {
			t.Fatalf("no %s (%v)", c.from, err)
		}
		for _, src := range sources {
			want, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(chartDir(t), c.to, filepath.Base(src))
			got, err := os.ReadFile(dst)
			if err != nil {
				t.Errorf("%s has no copy in the chart (%v): run `make manifests`", src, err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s: run `make manifests` (never edit the chart's copy)", dst, src)
			}
		}
	}
	// And nothing else: a CRD or role removed from config/ must leave the chart too.
	for dir, from := range map[string][]string{
		"files/crds":             {"config/crd/bases/*.yaml"},
		"files/watch-namespaces": {"config/watch-namespaces/rbac/manager_*role.yaml"},
		"files/rbac": {"config/rbac/role.yaml", "config/rbac/leader_election_role.yaml", "config/rbac/metrics_reader_role.yaml",
			"config/rbac/*_editor_role.yaml", "config/rbac/*_viewer_role.yaml"},
		"files/prometheus": {"config/prometheus/thingspace-operator.rules.yaml"},
		"files/grafana":    {"config/grafana/*.json"},
		"files/argocd":     {"config/argocd/argocd-cm-patch.yaml"},
	} {
		want := map[string]bool{}
		for _, pattern := range from {
			matches, _ := filepath.Glob(repoPath(t, pattern))
			for _, m := range matches {
				want[filepath.Base(m)] = true
			}
		}
		entries, err := os.ReadDir(filepath.Join(chartDir(t), dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !want[e.Name()] {
				t.Errorf("%s/%s is not a copy of anything in config/: run `make manifests`", dir, e.Name())
			}
		}
	}
}

// The rules the chart renders are config/rbac's, whatever the templates do with the copies.
func TestRenderedRBACIsConfigRBAC(t *testing.T) {
	objs := render(t, nil)
	rules := func(kind, name string) []rbacv1.PolicyRule {
		var r rbacv1.ClusterRole // Role and ClusterRole have the same rules field
		into(t, objs.must(t, kind, name), &r)
		return r.Rules
	}
	var manager rbacv1.ClusterRole
	readYAML(t, repoPath(t, "config/rbac/role.yaml"), &manager)
	if got := rules("ClusterRole", fullname+"-manager"); len(manager.Rules) == 0 || !reflect.DeepEqual(got, manager.Rules) {
		t.Errorf("the chart's manager ClusterRole rules drift from config/rbac/role.yaml:\n got %+v\nwant %+v", got, manager.Rules)
	}
	var leader rbacv1.Role
	readYAML(t, repoPath(t, "config/rbac/leader_election_role.yaml"), &leader)
	if got := rules("Role", fullname+"-leader-election"); len(leader.Rules) == 0 || !reflect.DeepEqual(got, leader.Rules) {
		t.Errorf("the chart's leader-election Role rules drift from config/rbac/leader_election_role.yaml:\n got %+v\nwant %+v", got, leader.Rules)
	}
	var reader rbacv1.ClusterRole
	readYAML(t, repoPath(t, "config/rbac/metrics_reader_role.yaml"), &reader)
	if got := rules("ClusterRole", fullname+"-metrics-reader"); len(reader.Rules) == 0 || !reflect.DeepEqual(got, reader.Rules) {
		t.Errorf("the chart's metrics-reader ClusterRole rules drift from config/rbac/metrics_reader_role.yaml:\n got %+v\nwant %+v", got, reader.Rules)
	}
	if ns := objs.must(t, "Role", fullname+"-leader-election").GetNamespace(); ns != namespace {
		t.Errorf("leader-election Role in namespace %q, want the release namespace %q", ns, namespace)
	}

	// The roles for people: same rules and aggregation labels as config/rbac, one for one.
	editors, _ := filepath.Glob(repoPath(t, "config/rbac/*_editor_role.yaml"))
	viewers, _ := filepath.Glob(repoPath(t, "config/rbac/*_viewer_role.yaml"))
	paths := append(editors, viewers...)
	var names []string
	for _, p := range paths {
		var want rbacv1.ClusterRole
		readYAML(t, p, &want)
		name := fullname + "-" + strings.TrimSuffix(want.Name, "-role")
		names = append(names, name)
		got := objs.get("ClusterRole", name)
		if got == nil {
			t.Errorf("no ClusterRole %s for %s", name, p)
			continue
		}
		var role rbacv1.ClusterRole
		into(t, got, &role)
		if !reflect.DeepEqual(role.Rules, want.Rules) {
			t.Errorf("ClusterRole %s rules drift from %s", name, p)
		}
		for k, v := range want.Labels {
			if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") && role.Labels[k] != v {
				t.Errorf("ClusterRole %s: label %s=%q, want %q as in %s", name, k, role.Labels[k], v, p)
			}
		}
	}
	if crds, _ := filepath.Glob(repoPath(t, "config/crd/bases/*.yaml")); len(names) != 2*len(crds) {
		t.Errorf("config/rbac has %d editor/viewer roles for %d CRDs, want a pair per CRD: %v", len(names), len(crds), names)
	}
	sort.Strings(names)
	names = append(names, fullname+"-manager", fullname+"-metrics-reader")
	if got := len(objs.ofKind("ClusterRole")); got != len(names) {
		t.Errorf("the chart renders %d ClusterRoles, want %d: %v", got, len(names), objs.kinds())
	}
}

// The CRDs the chart renders are config/crd/bases' (spec for spec), with the keep policy by default.
func TestRenderedCRDsAreConfigCRDs(t *testing.T) {
	objs := render(t, nil)
	paths, err := filepath.Glob(repoPath(t, "config/crd/bases/*.yaml"))
	if err != nil || len(paths) != 5 {
		t.Fatalf("want 5 CRDs in config/crd/bases, got %v (%v)", paths, err)
	}
	if got := len(objs.ofKind("CustomResourceDefinition")); got != len(paths) {
		t.Errorf("the chart renders %d CRDs, want %d", got, len(paths))
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := decode(data)
		if err != nil || len(want) != 1 {
			t.Fatalf("%s: %v", p, err)
		}
		got := objs.get("CustomResourceDefinition", want[0].GetName())
		if got == nil {
			t.Errorf("no CRD %s rendered", want[0].GetName())
			continue
		}
		if !reflect.DeepEqual(got.Object["spec"], want[0].Object["spec"]) {
			t.Errorf("CRD %s: the rendered spec differs from %s", got.GetName(), p)
		}
		if got.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s has no helm.sh/resource-policy: keep (crds.keep defaults to true)", got.GetName())
		}
		for k, v := range want[0].GetAnnotations() {
			if got.GetAnnotations()[k] != v {
				t.Errorf("CRD %s lost annotation %s=%q", got.GetName(), k, v)
			}
		}
	}
}
