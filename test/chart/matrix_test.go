package chart

import (
	"cmp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

type m = map[string]any

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// everything turns on every optional object, for the lint and one dry-run.
func everything() m {
	return m{
		"replicaCount":        2,
		"podDisruptionBudget": m{"enabled": true},
		"ingress":             m{"enabled": true, "className": "nginx", "tls": []any{m{"secretName": "callback-tls", "hosts": []any{"thingspace-operator.example.com"}}}},
		"serviceMonitor":      m{"enabled": true},
		"podMonitor":          m{"enabled": true},
		"networkPolicy":       m{"enabled": true},
		"prometheus":          m{"rules": m{"enabled": true}},
		"grafana":             m{"dashboards": m{"enabled": true}},
		"argocd":              m{"resourceCustomizations": m{"enabled": true}},
		"imagePullSecrets":    []any{m{"name": "regcred"}},
		"extraArgs":           []any{"--zap-log-level=debug"},
		"extraEnv":            []any{m{"name": "TZ", "value": "UTC"}},
	}
}

// deployment is the rendered manager Deployment (name fullname unless overridden).
func deployment(t testing.TB, objs objects) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	ds := objs.ofKind("Deployment")
	if len(ds) != 1 {
		t.Fatalf("want one Deployment, got %v", objs.kinds())
	}
	var d appsv1.Deployment
	into(t, ds[0], &d)
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(d.Spec.Template.Spec.Containers))
	}
	return &d, d.Spec.Template.Spec.Containers[0]
}

func env(c corev1.Container, name string) []corev1.EnvVar {
	var out []corev1.EnvVar
	for _, e := range c.Env {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func absent(t testing.TB, objs objects, kinds ...string) {
	t.Helper()
	for _, k := range kinds {
		if n := len(objs.ofKind(k)); n != 0 {
			t.Errorf("%d %s rendered, want none", n, k)
		}
	}
}

// Every case renders, passes `helm lint --strict`, does what its values promise, and every object is
// accepted by the API server (server-side dry-run, strict field validation).
func TestRenderMatrixAcceptedByAPIServer(t *testing.T) {
	for _, c := range slices.Concat(installCases, scopeCases, shardCases) {
		t.Run(c.name, func(t *testing.T) {
			objs := render(t, c.values)
			for _, o := range objs {
				if o.GetLabels()["app.kubernetes.io/instance"] != release || !strings.HasPrefix(o.GetLabels()["helm.sh/chart"], "thingspace-operator-") {
					t.Errorf("%s %s lacks the chart's labels: %v", o.GetKind(), o.GetName(), o.GetLabels())
				}
			}
			c.check(t, objs)
			if drain, _ := c.values["drainOnUninstall"].(m); drain["enabled"] != false {
				timeout, _ := drain["timeout"].(string)
				checkDrainHook(t, objs, cmp.Or(timeout, "150s"))
			}
			if out, err := runHelm(t, "lint", "--strict", "--namespace", namespace, chartDir(t), "-f", valuesFile(t, c.values)); err != nil {
				t.Errorf("helm lint --strict: %v\n%s", err, out)
			}
			dryRun(t, objs)
			d, _ := deployment(t, objs)
			if err := dryRunPod(t, d); err != nil {
				t.Errorf("a manager pod is refused in a namespace enforcing the restricted Pod Security Standard: %v", err)
			}
		})
	}
}

// matches reports whether selector selects labels (every selector label present and equal).
func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func equalLabels(a, b map[string]string) bool { return matches(a, b) && matches(b, a) }

// checkScraper checks the monitors' identity: a ServiceAccount, its token Secret, and a binding to the
// metrics-reader ClusterRole, whose only rule is GET on /metrics.
func checkScraper(t *testing.T, objs objects) {
	t.Helper()
	objs.must(t, "ServiceAccount", fullname+"-metrics-scraper")
	var sec corev1.Secret
	into(t, objs.must(t, "Secret", fullname+"-metrics-scraper-token"), &sec)
	if sec.Type != corev1.SecretTypeServiceAccountToken || sec.Annotations[corev1.ServiceAccountNameKey] != fullname+"-metrics-scraper" {
		t.Errorf("scraper token Secret %+v", sec.ObjectMeta)
	}
	var crb rbacv1.ClusterRoleBinding
	into(t, objs.must(t, "ClusterRoleBinding", fullname+"-metrics-scraper"), &crb)
	if crb.RoleRef.Name != fullname+"-metrics-reader" || len(crb.Subjects) != 1 || crb.Subjects[0].Name != fullname+"-metrics-scraper" {
		t.Errorf("scraper binding %+v", crb)
	}
	var role rbacv1.ClusterRole
	into(t, objs.must(t, "ClusterRole", fullname+"-metrics-reader"), &role)
	if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].NonResourceURLs, []string{"/metrics"}) || !slices.Equal(role.Rules[0].Verbs, []string{"get"}) {
		t.Errorf("metrics-reader rules %+v", role.Rules)
	}
}

func sortedCopy(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
