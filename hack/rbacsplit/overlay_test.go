package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// config/watch-namespaces builds (kustomize: $KUSTOMIZE, which `make test` sets, else bin/kustomize)
// into config/default with the ClusterRole cut down to the cluster-wide rules, the generated Role and a
// RoleBinding to the manager's ServiceAccount in each watched namespace and the manager's own, and the
// manager started with --watch-namespaces naming the same namespaces.
func TestWatchNamespacesOverlay(t *testing.T) {
	root := filepath.Join("..", "..")
	kustomize := os.Getenv("KUSTOMIZE")
	if kustomize == "" {
		kustomize = filepath.Join(root, "bin", "kustomize")
	}
	if _, err := os.Stat(kustomize); err != nil {
		t.Skipf("no kustomize (%v): run `make kustomize` or set KUSTOMIZE", err)
	}
	out, err := exec.Command(kustomize, "build", filepath.Join(root, "config", "watch-namespaces")).Output()
	if err != nil {
		t.Fatalf("kustomize build config/watch-namespaces: %v", err)
	}
	var wantNS rbacv1.Role
	var wantCluster rbacv1.ClusterRole
	if err := readYAML(filepath.Join(root, "config/watch-namespaces/rbac/manager_role.yaml"), &wantNS); err != nil {
		t.Fatal(err)
	}
	if err := readYAML(filepath.Join(root, "config/watch-namespaces/rbac/manager_cluster_role.yaml"), &wantCluster); err != nil {
		t.Fatal(err)
	}
	const sa, opns = "thingspace-operator-controller-manager", "thingspace-operator-system"
	roles := map[string]bool{} // namespaces with the manager's Role
	bound := map[string]bool{} // namespaces with its binding to the manager
	var watch string
	for _, doc := range bytes.Split(out, []byte("\n---\n")) {
		var head struct {
			Kind     string
			Metadata struct{ Name, Namespace string }
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatal(err)
		}
		switch {
		case head.Kind == "ClusterRole" && head.Metadata.Name == "thingspace-operator-manager-role":
			var cr rbacv1.ClusterRole
			_ = yaml.Unmarshal(doc, &cr)
			if !reflect.DeepEqual(cr.Rules, wantCluster.Rules) {
				t.Errorf("the manager ClusterRole's rules %+v, want manager_cluster_role.yaml's %+v", cr.Rules, wantCluster.Rules)
			}
		case head.Kind == "Role" && head.Metadata.Name == "thingspace-operator-manager-role":
			var r rbacv1.Role
			_ = yaml.Unmarshal(doc, &r)
			if !reflect.DeepEqual(r.Rules, wantNS.Rules) {
				t.Errorf("Role %s/%s rules differ from manager_role.yaml's", r.Namespace, r.Name)
			}
			roles[r.Namespace] = true
		case head.Kind == "RoleBinding" && head.Metadata.Name == "thingspace-operator-manager-rolebinding":
			var rb rbacv1.RoleBinding
			_ = yaml.Unmarshal(doc, &rb)
			if rb.RoleRef.Kind == "Role" && rb.RoleRef.Name == "thingspace-operator-manager-role" && len(rb.Subjects) == 1 &&
				rb.Subjects[0].Name == sa && rb.Subjects[0].Namespace == opns {
				bound[rb.Namespace] = true
			}
		case head.Kind == "Deployment":
			var d appsv1.Deployment
			_ = yaml.Unmarshal(doc, &d)
			for _, a := range d.Spec.Template.Spec.Containers[0].Args {
				if v, ok := strings.CutPrefix(a, "--watch-namespaces="); ok {
					watch = v
				}
			}
		}
	}
	watched := strings.Split(watch, ",")
	if watch == "" {
		t.Fatal("the manager has no --watch-namespaces")
	}
	for _, ns := range append(slices.Clone(watched), opns) {
		if !roles[ns] || !bound[ns] {
			t.Errorf("namespace %s: Role %v, bound to the manager %v; want both", ns, roles[ns], bound[ns])
		}
	}
	if len(roles) != len(watched)+1 {
		t.Errorf("Roles in %v, want exactly --watch-namespaces=%s and %s", roles, watch, opns)
	}
}
