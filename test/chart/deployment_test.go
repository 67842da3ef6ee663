package chart

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// configManager is config/manager/manager.yaml's Deployment, what `make deploy` (kustomize) installs;
// kustomize changes only its names, namespace and image.
func configManager(t *testing.T) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	data, err := os.ReadFile(repoPath(t, "config/manager/manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return deployment(t, objs)
}

// The chart installs the manager as kustomize does: same command, flags, ports, probes, resources,
// security contexts and grace period, running as the ServiceAccount its bindings name.
func TestDeploymentIsConfigManagers(t *testing.T) {
	objs := render(t, nil)
	got, gotC := deployment(t, objs)
	want, wantC := configManager(t)

	// The chart adds the lease timings explicitly, at the manager's defaults (cmd/manager).
	lease := []string{"--leader-elect-lease-duration=60s", "--leader-elect-renew-deadline=40s", "--leader-elect-retry-period=15s"}
	var args []string
	for _, a := range gotC.Args {
		if i := slices.Index(lease, a); i >= 0 {
			lease = slices.Delete(lease, i, i+1)
			continue
		}
		args = append(args, a)
	}
	if len(lease) != 0 {
		t.Errorf("args %v lack %v", gotC.Args, lease)
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"command", gotC.Command, wantC.Command},
		{"args (without the lease timings)", args, wantC.Args},
		{"ports", gotC.Ports, wantC.Ports},
		{"liveness probe", gotC.LivenessProbe, wantC.LivenessProbe},
		{"readiness probe", gotC.ReadinessProbe, wantC.ReadinessProbe},
		{"resources", gotC.Resources, wantC.Resources},
		// make bench runs the manager with config/manager's GOMEMLIMIT: the chart's default must be it.
		{"GOMEMLIMIT", env(gotC, "GOMEMLIMIT"), env(wantC, "GOMEMLIMIT")},
		{"container securityContext", gotC.SecurityContext, wantC.SecurityContext},
		{"pod securityContext", got.Spec.Template.Spec.SecurityContext, want.Spec.Template.Spec.SecurityContext},
		{"terminationGracePeriodSeconds", got.Spec.Template.Spec.TerminationGracePeriodSeconds, want.Spec.Template.Spec.TerminationGracePeriodSeconds},
		{"replicas", got.Spec.Replicas, want.Spec.Replicas},
		{"default-container annotation", got.Spec.Template.Annotations["kubectl.kubernetes.io/default-container"], want.Spec.Template.Annotations["kubectl.kubernetes.io/default-container"]},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: chart %+v, config/manager %+v", c.what, c.got, c.want)
		}
	}
	if gotC.Name != "manager" || !matches(got.Spec.Selector.MatchLabels, got.Spec.Template.Labels) {
		t.Errorf("container %q, selector %v, pod labels %v", gotC.Name, got.Spec.Selector.MatchLabels, got.Spec.Template.Labels)
	}

	// The restricted Pod Security Standard, spelled out (also checked by the API server in the matrix).
	sc, psc := gotC.SecurityContext, got.Spec.Template.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("not restricted: pod %+v, container %+v", psc, sc)
	}

	// The pod runs as the ServiceAccount the chart creates, which both bindings grant in the release
	// namespace, as config/rbac binds controller-manager.
	sa := got.Spec.Template.Spec.ServiceAccountName
	if objs.get("ServiceAccount", sa) == nil || objs.get("ServiceAccount", sa).GetNamespace() != namespace {
		t.Errorf("pod ServiceAccount %q is not the chart's (%v)", sa, objs.kinds())
	}
	for _, b := range []struct{ kind, name, roleKind, role string }{
		{"ClusterRoleBinding", fullname + "-manager", "ClusterRole", fullname + "-manager"},
		{"RoleBinding", fullname + "-leader-election", "Role", fullname + "-leader-election"},
	} {
		var rb rbacv1.RoleBinding // ClusterRoleBinding has the same roleRef and subjects
		into(t, objs.must(t, b.kind, b.name), &rb)
		wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: namespace}}
		if rb.RoleRef.Kind != b.roleKind || rb.RoleRef.Name != b.role || !reflect.DeepEqual(rb.Subjects, wantSubjects) {
			t.Errorf("%s %s: roleRef %+v subjects %+v, want %s %s for %+v", b.kind, b.name, rb.RoleRef, rb.Subjects, b.roleKind, b.role, wantSubjects)
		}
		objs.must(t, b.roleKind, b.role)
	}
}

// GOMEMLIMIT is goMemLimitPercent (90) of the memory limit, in bytes, for each way of writing it.
func TestGOMEMLIMITFromTheMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		limit   any
		percent int
		want    string // "" for no GOMEMLIMIT
	}{
		{"256Mi", 90, "241591910"}, // 268435456 * 0.9, rounded down
		{"1Gi", 90, "966367641"},
		{"1.5Gi", 90, "1449551462"},
		{"512Ki", 90, "471859"},
		{"500M", 90, "450000000"},
		{"2G", 90, "1800000000"},
		{"800k", 90, "720000"},
		{"268435456", 90, "241591910"},
		{268435456, 90, "241591910"}, // a YAML number
		{"256Mi", 50, "134217728"},
		{"256Mi", 100, "268435456"},
		{"256Mi", 0, ""},
		{nil, 90, ""}, // no memory limit (null removes the default)
	} {
		// nil (YAML null) removes the default limit: Helm deletes keys set to null.
		limits := m{"memory": c.limit}
		_, ctr := deployment(t, render(t, m{"goMemLimitPercent": c.percent, "resources": m{"requests": m{"memory": "64Mi"}, "limits": limits}}))
		g := env(ctr, "GOMEMLIMIT")
		switch {
		case c.want == "" && len(g) != 0:
			t.Errorf("limit %v, %d%%: GOMEMLIMIT %v, want none", c.limit, c.percent, g)
		case c.want != "" && (len(g) != 1 || g[0].Value != c.want):
			t.Errorf("limit %v, %d%%: GOMEMLIMIT %v, want %s", c.limit, c.percent, g, c.want)
		}
	}
}

// The Pod Security check of the matrix can fail: a container that may escalate privileges is refused.
func TestRestrictedPodSecurityIsEnforced(t *testing.T) {
	d, _ := deployment(t, render(t, m{"securityContext": m{"allowPrivilegeEscalation": true, "readOnlyRootFilesystem": true, "capabilities": m{"drop": []any{"ALL"}}}}))
	err := dryRunPod(t, d)
	if err == nil || !strings.Contains(err.Error(), "allowPrivilegeEscalation") {
		t.Errorf("a pod with allowPrivilegeEscalation true: want refused by Pod Security admission, got %v", err)
	}
}
