package chart

import (
	"strings"
	"testing"
)

func TestHelmLint(t *testing.T) {
	for _, args := range [][]string{
		{"lint", chartDir(t)},
		{"lint", "--strict", chartDir(t)},
		{"lint", "--strict", "--namespace", namespace, chartDir(t), "-f", valuesFile(t, everything())},
	} {
		out, err := runHelm(t, args...)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if !strings.Contains(string(out), "0 chart(s) failed") {
			t.Errorf("helm %v: %s", args, out)
		}
	}
}

// values.schema.json closes every level users set (additionalProperties: false), so a typo fails the
// install instead of being silently ignored; bad types and formats fail too. Kubernetes objects passed
// through (securityContext, tolerations, ...) are closed at their first level.
func TestSchemaRejectsTyposAndBadValues(t *testing.T) {
	for _, c := range []struct {
		name   string
		values map[string]any
		want   string // in helm's error
	}{
		{"top-level typo", map[string]any{"replicaCont": 2}, "additional properties 'replicaCont' not allowed"},
		{"image typo", map[string]any{"image": map[string]any{"tga": "v1"}}, "'tga' not allowed"},
		{"crds typo", map[string]any{"crds": map[string]any{"keepp": true}}, "'keepp' not allowed"},
		{"serviceAccount typo", map[string]any{"serviceAccount": map[string]any{"annotation": map[string]any{}}}, "'annotation' not allowed"},
		{"rbac typo", map[string]any{"rbac": map[string]any{"enabled": false}}, "'enabled' not allowed"},
		{"leaderElection typo", map[string]any{"leaderElection": map[string]any{"leaseDuraton": "30s"}}, "'leaseDuraton' not allowed"},
		{"securityContext typo", map[string]any{"securityContext": map[string]any{"readOnlyRootFileSystem": true}}, "'readOnlyRootFileSystem' not allowed"},
		{"podSecurityContext typo", map[string]any{"podSecurityContext": map[string]any{"runAsNonroot": true}}, "'runAsNonroot' not allowed"},
		{"resources typo", map[string]any{"resources": map[string]any{"limit": map[string]any{"memory": "1Gi"}}}, "'limit' not allowed"},
		{"pdb typo", map[string]any{"podDisruptionBudget": map[string]any{"minAvaliable": 1}}, "'minAvaliable' not allowed"},
		{"ingress host typo", map[string]any{"ingress": map[string]any{"hosts": []any{map[string]any{"host": "a.example", "path": "/"}}}}, "'path' not allowed"},
		{"networkPolicy typo", map[string]any{"networkPolicy": map[string]any{"enable": true}}, "'enable' not allowed"},
		{"serviceMonitor typo", map[string]any{"serviceMonitor": map[string]any{"labelss": map[string]any{}}}, "'labelss' not allowed"},
		{"podMonitor typo", map[string]any{"podMonitor": map[string]any{"intervall": "30s"}}, "'intervall' not allowed"},
		{"ports typo", map[string]any{"ports": map[string]any{"metric": 9090}}, "'metric' not allowed"},
		{"prometheus.rules typo", map[string]any{"prometheus": map[string]any{"rules": map[string]any{"enable": true}}}, "'enable' not allowed"},
		{"prometheus typo", map[string]any{"prometheus": map[string]any{"rule": map[string]any{}}}, "'rule' not allowed"},
		{"grafana.dashboards typo", map[string]any{"grafana": map[string]any{"dashboards": map[string]any{"label": map[string]any{}}}}, "'label' not allowed"},
		{"argocd typo", map[string]any{"argocd": map[string]any{"healthChecks": map[string]any{}}}, "'healthChecks' not allowed"},
		{"argocd.resourceCustomizations typo", map[string]any{"argocd": map[string]any{"resourceCustomizations": map[string]any{"enabed": true}}}, "'enabed' not allowed"},
		{"toleration typo", map[string]any{"tolerations": []any{map[string]any{"key": "k", "effects": "NoSchedule"}}}, "'effects' not allowed"},
		{"drainOnUninstall typo", map[string]any{"drainOnUninstall": map[string]any{"timout": "3m"}}, "'timout' not allowed"},
		{"drainOnUninstall resources typo", map[string]any{"drainOnUninstall": map[string]any{"resources": map[string]any{"limit": map[string]any{}}}}, "'limit' not allowed"},
		{"drain timeout format", map[string]any{"drainOnUninstall": map[string]any{"timeout": "150"}}, "/drainOnUninstall/timeout"},
		{"replicaCount type", map[string]any{"replicaCount": "two"}, "want integer"},
		{"digest format", map[string]any{"image": map[string]any{"digest": "abc123"}}, "/image/digest"},
		{"pullPolicy enum", map[string]any{"image": map[string]any{"pullPolicy": "Sometimes"}}, "/image/pullPolicy"},
		{"lease duration format", map[string]any{"leaderElection": map[string]any{"leaseDuration": "60"}}, "/leaderElection/leaseDuration"},
		{"extraArgs not a flag", map[string]any{"extraArgs": []any{"zap-log-level=debug"}}, "/extraArgs/0"},
		{"port range", map[string]any{"ports": map[string]any{"callback": 70000}}, "/ports/callback"},
		{"allowedEndpointHosts empty", map[string]any{"allowedEndpointHosts": []any{}}, "/allowedEndpointHosts"},
		{"allowedEndpointHosts URL", map[string]any{"allowedEndpointHosts": []any{"https://thingspace.verizon.com"}}, "/allowedEndpointHosts/0"},
		{"allowedEndpointHosts wildcard", map[string]any{"allowedEndpointHosts": []any{"*.verizon.com"}}, "/allowedEndpointHosts/0"},
		{"allowedEndpointHosts list in one", map[string]any{"allowedEndpointHosts": []any{"a.example,b.example"}}, "/allowedEndpointHosts/0"},
		{"goMemLimitPercent range", map[string]any{"goMemLimitPercent": 150}, "/goMemLimitPercent"},
		// Not the schema's: the templates refuse what they cannot render faithfully.
		{"memory limit suffix", map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": "256MB"}}}, `resources.limits.memory "256MB"`},
		{"existing SA without a name", map[string]any{"serviceAccount": map[string]any{"create": false}}, "serviceAccount.name"},
		{"ServiceMonitor without metrics Service", map[string]any{"serviceMonitor": map[string]any{"enabled": true}, "metricsService": map[string]any{"enabled": false}}, "serviceMonitor.enabled needs metricsService.enabled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := template(t, c.values)
			if err == nil {
				t.Fatalf("helm template accepted %v:\n%.300s", c.values, out)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("helm template failed, but not with %q: %v", c.want, err)
			}
		})
	}
	// --set goes through the same schema.
	if _, err := runHelm(t, "template", release, chartDir(t), "--set", "image.tga=v1"); err == nil || !strings.Contains(err.Error(), "'tga' not allowed") {
		t.Errorf("helm template --set image.tga=v1: want a schema error, got %v", err)
	}
}

// helm's own install path against the API server, without changing it (--dry-run=server): the
// release's objects in helm's install order, its ownership checks, and NOTES.txt.
func TestHelmInstallDryRun(t *testing.T) {
	apiServer(t)
	out, err := runHelm(t, "install", release, chartDir(t), "--namespace", namespace, "--kubeconfig", apiKubeconfig,
		"--dry-run=server", "-f", valuesFile(t, everything()))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kubectl -n " + namespace + " rollout status deployment/" + fullname,
		"https://thingspace-operator.example.com/oauth2/callback",
		"helm.sh/resource-policy: keep",
		"https://" + fullname + "-metrics." + namespace + ":8443/metrics",
		"ClusterRole\n" + fullname + "-metrics-reader (the chart's monitors scrape as " + fullname + "-metrics-scraper).",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("helm install --dry-run=server output lacks %q:\n%s", want, tail(string(out), 1500))
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
