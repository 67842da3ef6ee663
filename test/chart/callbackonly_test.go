package chart

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// callbackOnly.enabled runs the OAuth2 endpoints apart: a Deployment of their own with --callback-only
// under a ServiceAccount whose ClusterRole has exactly the rules of config/callback-only (what the
// envtest of internal/controller proves enough), the manager without a callback, and the callback
// Service selecting the callback pods and no manager pod (nor the manager's selectors a callback pod).
func TestCallbackOnly(t *testing.T) {
	objs := render(t, m{"callbackOnly": m{"enabled": true, "replicaCount": 3}})
	name := fullname + "-oauth-callback"

	var cb, mgr appsv1.Deployment
	into(t, objs.must(t, "Deployment", name), &cb)
	into(t, objs.must(t, "Deployment", fullname), &mgr)
	c := cb.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--callback-only") || slices.Contains(c.Args, "--leader-elect") ||
		cb.Spec.Template.Spec.ServiceAccountName != name || *cb.Spec.Replicas != 3 {
		t.Errorf("callback Deployment: args %v, ServiceAccount %q, replicas %d", c.Args, cb.Spec.Template.Spec.ServiceAccountName, *cb.Spec.Replicas)
	}
	if !slices.Contains(mgr.Spec.Template.Spec.Containers[0].Args, "--oauth-callback-bind-address=0") {
		t.Errorf("the manager still serves the callback: %v", mgr.Spec.Template.Spec.Containers[0].Args)
	}
	var svc corev1.Service
	into(t, objs.must(t, "Service", name), &svc)
	cbPods, mgrPods := cb.Spec.Template.Labels, mgr.Spec.Template.Labels
	if !matches(svc.Spec.Selector, cbPods) || matches(svc.Spec.Selector, mgrPods) {
		t.Errorf("the callback Service selects %v: callback pods %v, manager pods %v", svc.Spec.Selector, cbPods, mgrPods)
	}
	if matches(mgr.Spec.Selector.MatchLabels, cbPods) || matches(cb.Spec.Selector.MatchLabels, mgrPods) {
		t.Errorf("the Deployments' selectors overlap: %v, %v", mgr.Spec.Selector.MatchLabels, cb.Spec.Selector.MatchLabels)
	}

	var role, want rbacv1.ClusterRole
	into(t, objs.must(t, "ClusterRole", name), &role)
	readYAML(t, repoPath(t, "config", "callback-only", "callback_role.yaml"), &want)
	if !slices.EqualFunc(role.Rules, want.Rules, func(a, b rbacv1.PolicyRule) bool {
		return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) && slices.Equal(a.Verbs, b.Verbs)
	}) {
		t.Errorf("the chart's callback ClusterRole %v differs from config/callback-only's %v", role.Rules, want.Rules)
	}
	var binding rbacv1.ClusterRoleBinding
	into(t, objs.must(t, "ClusterRoleBinding", name), &binding)
	if binding.RoleRef.Name != name || len(binding.Subjects) != 1 || binding.Subjects[0].Name != name || binding.Subjects[0].Namespace != namespace {
		t.Errorf("binding %+v", binding)
	}
	objs.must(t, "ServiceAccount", name)

	// Off (the default): none of it, and the manager serves the callback.
	off := render(t, m{})
	if off.get("Deployment", name) != nil || off.get("ClusterRole", name) != nil {
		t.Error("callback-only objects rendered by default")
	}
	if _, c := deployment(t, off); !slices.Contains(c.Args, "--oauth-callback-bind-address=:8082") {
		t.Errorf("the manager does not serve the callback by default: %v", c.Args)
	}
}
