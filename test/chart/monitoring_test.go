package chart

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The monitoring objects and the Argo CD health checks render from the same files kustomize and the
// tests use: the PrometheusRule's spec is config/prometheus's rule file (the one promtool tests), the
// dashboard ConfigMap holds config/grafana's JSON, and the Argo CD ConfigMap holds every key of
// config/argocd/argocd-cm-patch.yaml verbatim. The API server accepts them all.
func TestMonitoringAndArgoCDObjects(t *testing.T) {
	objs := render(t, m{
		"prometheus": m{"rules": m{"enabled": true, "labels": m{"release": "prom"}}},
		"grafana": m{"dashboards": m{"enabled": true, "namespace": "monitoring", "annotations": m{"grafana_folder": "ThingSpace"},
			"labels": m{"grafana_dashboard": "1", "team": "ops"}}},
		"argocd":         m{"resourceCustomizations": m{"enabled": true}},
		"serviceMonitor": m{"enabled": true, "relabelings": []any{m{"action": "labeldrop", "regex": "pod"}}},
		"podMonitor":     m{"enabled": true},
	})

	rule := objs.must(t, "PrometheusRule", fullname)
	if rule.GetLabels()["release"] != "prom" || rule.GetNamespace() != namespace {
		t.Errorf("PrometheusRule %s/%s labels %v: want release=prom in the release namespace", rule.GetNamespace(), rule.GetName(), rule.GetLabels())
	}
	var rules map[string]any
	readYAML(t, repoPath(t, "config/prometheus/thingspace-operator.rules.yaml"), &rules)
	if spec, _, _ := unstructured.NestedMap(rule.Object, "spec"); len(rules["groups"].([]any)) == 0 || !reflect.DeepEqual(spec, rules) {
		t.Errorf("the PrometheusRule's spec is not config/prometheus/thingspace-operator.rules.yaml")
	}

	var dash corev1.ConfigMap
	into(t, objs.must(t, "ConfigMap", fullname+"-dashboard"), &dash)
	if dash.Namespace != "monitoring" || dash.Labels["grafana_dashboard"] != "1" || dash.Labels["team"] != "ops" || dash.Annotations["grafana_folder"] != "ThingSpace" {
		t.Errorf("dashboard ConfigMap %s/%s labels %v annotations %v", dash.Namespace, dash.Name, dash.Labels, dash.Annotations)
	}
	want, err := os.ReadFile(repoPath(t, "config/grafana/thingspace-operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got, wantJSON any
	if err := json.Unmarshal([]byte(dash.Data["thingspace-operator.json"]), &got); err != nil {
		t.Fatalf("the dashboard ConfigMap's JSON does not parse: %v", err)
	}
	_ = json.Unmarshal(want, &wantJSON)
	if !reflect.DeepEqual(got, wantJSON) {
		t.Error("the dashboard ConfigMap does not hold config/grafana/thingspace-operator.json")
	}

	var health corev1.ConfigMap
	into(t, objs.must(t, "ConfigMap", fullname+"-argocd-health"), &health)
	var patch corev1.ConfigMap
	data, err := os.ReadFile(repoPath(t, "config/argocd/argocd-cm-patch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &patch); err != nil {
		t.Fatal(err)
	}
	if len(patch.Data) == 0 || !reflect.DeepEqual(health.Data, patch.Data) {
		t.Errorf("the Argo CD ConfigMap's keys differ from config/argocd/argocd-cm-patch.yaml's (%d keys, want %d)", len(health.Data), len(patch.Data))
	}

	// ThingSpaceOperatorAbsent looks for job="thingspace-operator": both monitors set it first, and a
	// relabeling of the user's comes after.
	for _, c := range []struct{ kind, field string }{{"ServiceMonitor", "endpoints"}, {"PodMonitor", "podMetricsEndpoints"}} {
		eps, _, _ := unstructured.NestedSlice(objs.must(t, c.kind, fullname).Object, "spec", c.field)
		rl, _ := eps[0].(m)["relabelings"].([]any)
		if len(rl) == 0 || rl[0].(m)["targetLabel"] != "job" || rl[0].(m)["replacement"] != "thingspace-operator" {
			t.Errorf("%s relabelings %v: want job=thingspace-operator first", c.kind, rl)
		}
		if c.kind == "ServiceMonitor" && (len(rl) != 2 || rl[1].(m)["action"] != "labeldrop") {
			t.Errorf("ServiceMonitor relabelings %v: want the user's after the job's", rl)
		}
	}
	// The API server has no "monitoring" namespace: the dashboard is checked in the release's.
	var check objects
	for _, o := range append(objs.ofKind("PrometheusRule"), objs.ofKind("ConfigMap")...) {
		c := o.DeepCopy()
		c.SetNamespace(namespace)
		check = append(check, c)
	}
	dryRun(t, check)
}
