package chart

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

// hooks and notHooks split the rendered objects by helm.sh/hook (helm template renders both).
func (objs objects) hooks() objects    { return objs.filter(true) }
func (objs objects) notHooks() objects { return objs.filter(false) }

func (objs objects) filter(hook bool) objects {
	var out objects
	for _, o := range objs {
		if _, ok := o.GetAnnotations()["helm.sh/hook"]; ok == hook {
			out = append(out, o)
		}
	}
	return out
}

// checkDrainHook checks the uninstall drain hook (drainOnUninstall) against the Deployment it drains
// and returns its Pod: pre-delete hooks, RBAC before the Pod, least privilege, the manager's image,
// security contexts and scheduling, and labels none of the manager's selectors match.
func checkDrainHook(t *testing.T, objs objects, timeout string) corev1.Pod {
	t.Helper()
	d, mgr := deployment(t, objs)
	// Every object of the hook is named after the Deployment (the chart's full name).
	drainName := d.Name + "-uninstall-drain"
	hooks := objs.hooks()
	if got, want := hooks.kinds(), []string{"ServiceAccount/" + drainName, "Role/" + drainName, "RoleBinding/" + drainName, "Pod/" + drainName}; !slices.Equal(got, want) {
		t.Fatalf("hooks %v, want %v", got, want)
	}
	weight := map[string]int{}
	for _, h := range hooks {
		a := h.GetAnnotations()
		if a["helm.sh/hook"] != "pre-delete" || a["helm.sh/hook-delete-policy"] != "before-hook-creation,hook-succeeded" || h.GetNamespace() != namespace {
			t.Errorf("%s %s: annotations %v in %q, want a pre-delete hook deleted before re-creation and on success, in %s", h.GetKind(), h.GetName(), a, h.GetNamespace(), namespace)
		}
		w, err := strconv.Atoi(a["helm.sh/hook-weight"])
		if err != nil {
			t.Errorf("%s: hook-weight %q", h.GetKind(), a["helm.sh/hook-weight"])
		}
		weight[h.GetKind()] = w
	}
	for _, k := range []string{"ServiceAccount", "Role", "RoleBinding"} {
		if weight[k] >= weight["Pod"] {
			t.Errorf("hook weights %v: the %s must be created before the Pod", weight, k)
		}
	}

	var role rbacv1.Role
	into(t, hooks.must(t, "Role", drainName), &role)
	wantRules := []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, ResourceNames: []string{d.Name}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}},
	}
	if !reflect.DeepEqual(role.Rules, wantRules) {
		t.Errorf("drain Role rules %+v, want %+v", role.Rules, wantRules)
	}
	var rb rbacv1.RoleBinding
	into(t, hooks.must(t, "RoleBinding", drainName), &rb)
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != drainName || len(rb.Subjects) != 1 ||
		rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != drainName || rb.Subjects[0].Namespace != namespace {
		t.Errorf("drain RoleBinding %+v %+v", rb.RoleRef, rb.Subjects)
	}

	var pod corev1.Pod
	into(t, hooks.must(t, "Pod", drainName), &pod)
	s := pod.Spec
	if len(s.Containers) != 1 || len(s.InitContainers) != 0 {
		t.Fatalf("drain Pod containers %+v", s.Containers)
	}
	c := s.Containers[0]
	wantCmd := []string{"/manager", "drain", "--namespace=" + namespace, "--deployment=" + d.Name, "--timeout=" + timeout}
	if !slices.Equal(c.Command, wantCmd) || len(c.Args) != 0 {
		t.Errorf("drain command %q %q, want %q", c.Command, c.Args, wantCmd)
	}
	if c.Image != mgr.Image || c.ImagePullPolicy != mgr.ImagePullPolicy {
		t.Errorf("drain image %q %s, manager %q %s", c.Image, c.ImagePullPolicy, mgr.Image, mgr.ImagePullPolicy)
	}
	ms := d.Spec.Template.Spec
	for _, x := range []struct {
		what      string
		got, want any
	}{
		{"container securityContext", c.SecurityContext, mgr.SecurityContext},
		{"pod securityContext", s.SecurityContext, ms.SecurityContext},
		{"imagePullSecrets", s.ImagePullSecrets, ms.ImagePullSecrets},
		{"nodeSelector", s.NodeSelector, ms.NodeSelector},
		{"tolerations", s.Tolerations, ms.Tolerations},
		{"priorityClassName", s.PriorityClassName, ms.PriorityClassName},
		{"serviceAccountName", s.ServiceAccountName, drainName},
		{"restartPolicy", s.RestartPolicy, corev1.RestartPolicyNever},
	} {
		if !reflect.DeepEqual(x.got, x.want) {
			t.Errorf("drain Pod %s %+v, want %+v", x.what, x.got, x.want)
		}
	}
	// The user's affinity (the manager has it too), never the chart's default anti-affinity of the
	// manager pods against each other; a node affinity only ever comes from the user.
	if s.Affinity != nil && !reflect.DeepEqual(s.Affinity, ms.Affinity) || s.Affinity == nil && ms.Affinity != nil && ms.Affinity.NodeAffinity != nil {
		t.Errorf("drain Pod affinity %+v, manager %+v", s.Affinity, ms.Affinity)
	}
	if s.AutomountServiceAccountToken == nil || !*s.AutomountServiceAccountToken || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("drain Pod automount %v, resources %+v: want the token mounted and a memory limit", s.AutomountServiceAccountToken, c.Resources)
	}

	// The drain waits for the pods the Deployment selects: its own Pod must not be one of them, nor
	// of anything else that selects the manager pods.
	selectors := map[string]map[string]string{"Deployment": d.Spec.Selector.MatchLabels}
	for _, kind := range []string{"PodDisruptionBudget", "NetworkPolicy", "PodMonitor"} {
		for _, o := range objs.ofKind(kind) {
			path := []string{"spec", "selector", "matchLabels"}
			if kind == "NetworkPolicy" {
				path = []string{"spec", "podSelector", "matchLabels"}
			}
			sel, _, _ := unstructured.NestedStringMap(o.Object, path...)
			selectors[kind] = sel
		}
	}
	for kind, sel := range selectors {
		if matches(sel, pod.Labels) {
			t.Errorf("the %s selector %v selects the drain Pod (labels %v)", kind, sel, pod.Labels)
		}
	}
	return pod
}

// `make undeploy` deletes the manager Deployment of config/default and waits for its pods before the
// rest; hack/deploy.mk names them, so its names must be what kustomize builds from config/default and
// config/manager, and the wait longer than the pods' grace period.
func TestUndeployDrainsConfigDefaultsManager(t *testing.T) {
	mk, err := os.ReadFile(repoPath(t, "hack/deploy.mk"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(MANAGER_\w+|DRAIN_TIMEOUT) \?= (.*)$`).FindAllStringSubmatch(string(mk), -1) {
		vars[m[1]] = m[2]
	}
	var kustomization struct {
		Namespace  string `json:"namespace"`
		NamePrefix string `json:"namePrefix"`
	}
	readYAML(t, repoPath(t, "config/default/kustomization.yaml"), &kustomization)
	d, _ := configManager(t)
	selector, err := labels.ConvertSelectorToLabelsMap(vars["MANAGER_POD_SELECTOR"])
	if err != nil || !equalLabels(selector, d.Spec.Selector.MatchLabels) {
		t.Errorf("MANAGER_POD_SELECTOR %q (%v), config/manager's selector %v", vars["MANAGER_POD_SELECTOR"], err, d.Spec.Selector.MatchLabels)
	}
	if vars["MANAGER_NAMESPACE"] != kustomization.Namespace || vars["MANAGER_DEPLOYMENT"] != kustomization.NamePrefix+d.Name {
		t.Errorf("hack/deploy.mk drains %s/%s; config/default builds %s/%s", vars["MANAGER_NAMESPACE"], vars["MANAGER_DEPLOYMENT"], kustomization.Namespace, kustomization.NamePrefix+d.Name)
	}
	timeout, err := time.ParseDuration(vars["DRAIN_TIMEOUT"])
	if grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds; err != nil || grace == nil || timeout <= time.Duration(*grace)*time.Second {
		t.Errorf("DRAIN_TIMEOUT %q (%v): want longer than terminationGracePeriodSeconds %v", vars["DRAIN_TIMEOUT"], err, grace)
	}
	for _, target := range []string{"undeploy", "undeploy-sim"} {
		recipe := regexp.MustCompile(`(?m)^` + target + `:.*\n((?:\t.*\n)+)`).FindStringSubmatch(string(mk))
		if recipe == nil {
			t.Errorf("no %s target in hack/deploy.mk", target)
			continue
		}
		drain, del := strings.Index(recipe[1], "$(drain-manager)"), strings.Index(recipe[1], "$(KUBECTL) delete")
		if drain < 0 || del < 0 || drain > del {
			t.Errorf("%s does not drain the manager before deleting the rest:\n%s", target, recipe[1])
		}
	}
}
