package chart

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// matrixCase is one set of chart values and what its rendering must show.
type matrixCase struct {
	name   string
	values m
	check  func(t *testing.T, objs objects)
}

// installCases cover the Deployment, its ServiceAccount, RBAC, CRDs, image and exposure.
var installCases = []matrixCase{
	{"defaults", nil, func(t *testing.T, objs objects) {
		d, ctr := deployment(t, objs)
		if *d.Spec.Replicas != 1 || d.Spec.Template.Spec.Affinity != nil {
			t.Errorf("replicas %d, affinity %v: want 1 and none", *d.Spec.Replicas, d.Spec.Template.Spec.Affinity)
		}
		if ctr.Image != "thingspace-operator:0.1.0" || ctr.ImagePullPolicy != corev1.PullIfNotPresent {
			t.Errorf("image %q %s, want thingspace-operator:<appVersion> IfNotPresent", ctr.Image, ctr.ImagePullPolicy)
		}
		objs.must(t, "ServiceAccount", fullname)
		objs.must(t, "ClusterRoleBinding", fullname+"-manager")
		objs.must(t, "RoleBinding", fullname+"-leader-election")
		objs.must(t, "Service", fullname+"-oauth-callback")
		objs.must(t, "Service", fullname+"-metrics")
		absent(t, objs, "PodDisruptionBudget", "Ingress", "NetworkPolicy", "ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap")
		// Metrics over HTTPS behind authentication (the flag's default), port 8443, and the role to read them.
		if slices.ContainsFunc(ctr.Args, func(a string) bool { return strings.HasPrefix(a, "--metrics-secure") }) ||
			!slices.Contains(ctr.Args, "--metrics-bind-address=:8443") {
			t.Errorf("args %v: want --metrics-bind-address=:8443 and secure metrics (no --metrics-secure)", ctr.Args)
		}
		objs.must(t, "ClusterRole", fullname+"-metrics-reader")
		if objs.get("ServiceAccount", fullname+"-metrics-scraper") != nil {
			t.Error("a scraper ServiceAccount without a monitor")
		}
	}},
	{"two replicas with a PDB", m{"replicaCount": 2, "podDisruptionBudget": m{"enabled": true}}, func(t *testing.T, objs objects) {
		d, _ := deployment(t, objs)
		a := d.Spec.Template.Spec.Affinity
		if *d.Spec.Replicas != 2 || a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
			a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
			t.Errorf("replicas %d, affinity %+v: want 2 with a soft anti-affinity by hostname", *d.Spec.Replicas, a)
		}
		var pdb policyv1.PodDisruptionBudget
		into(t, objs.must(t, "PodDisruptionBudget", fullname), &pdb)
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.MaxUnavailable != nil {
			t.Errorf("PDB %+v: want minAvailable 1 only", pdb.Spec)
		}
		if !equalLabels(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
			t.Errorf("PDB selector %v, Deployment selector %v", pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels)
		}
	}},
	{"PDB maxUnavailable wins", m{"replicaCount": 3, "podDisruptionBudget": m{"enabled": true, "maxUnavailable": "50%"}}, func(t *testing.T, objs objects) {
		var pdb policyv1.PodDisruptionBudget
		into(t, objs.must(t, "PodDisruptionBudget", fullname), &pdb)
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.String() != "50%" || pdb.Spec.MinAvailable != nil {
			t.Errorf("PDB %+v: want maxUnavailable 50%% only", pdb.Spec)
		}
	}},
	{"CRDs disabled", m{"crds": m{"enabled": false}}, func(t *testing.T, objs objects) {
		absent(t, objs, "CustomResourceDefinition")
	}},
	{"CRDs not kept", m{"crds": m{"keep": false}}, func(t *testing.T, objs objects) {
		crds := objs.ofKind("CustomResourceDefinition")
		if len(crds) != 5 {
			t.Fatalf("%d CRDs, want 5", len(crds))
		}
		for _, crd := range crds {
			if _, ok := crd.GetAnnotations()["helm.sh/resource-policy"]; ok {
				t.Errorf("CRD %s has a resource policy with crds.keep false", crd.GetName())
			}
		}
	}},
	{"no RBAC, existing ServiceAccount", m{"rbac": m{"create": false}, "serviceAccount": m{"create": false, "name": "existing-sa"}}, func(t *testing.T, objs objects) {
		// The manager's RBAC only: the drain hook brings its own (checked for every case below).
		absent(t, objs.notHooks(), "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
		if d, _ := deployment(t, objs); d.Spec.Template.Spec.ServiceAccountName != "existing-sa" {
			t.Errorf("serviceAccountName %q, want existing-sa", d.Spec.Template.Spec.ServiceAccountName)
		}
	}},
	{"named ServiceAccount, no people roles", m{"serviceAccount": m{"name": "tsop-manager", "annotations": m{"example.com/role": "x"}, "automount": false}, "rbac": m{"aggregateToDefaultRoles": false}}, func(t *testing.T, objs objects) {
		var sa corev1.ServiceAccount
		into(t, objs.must(t, "ServiceAccount", "tsop-manager"), &sa)
		if sa.Annotations["example.com/role"] != "x" || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Errorf("ServiceAccount %+v: want the annotation and automount false", sa)
		}
		d, _ := deployment(t, objs)
		if s := d.Spec.Template.Spec; s.ServiceAccountName != "tsop-manager" || s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
			t.Errorf("pod ServiceAccount %q automount %v", s.ServiceAccountName, s.AutomountServiceAccountToken)
		}
		for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
			for _, b := range objs.notHooks().ofKind(kind) {
				subjects, _, _ := unstructured.NestedSlice(b.Object, "subjects")
				if len(subjects) != 1 || subjects[0].(m)["name"] != "tsop-manager" || subjects[0].(m)["namespace"] != namespace {
					t.Errorf("%s %s subjects %v, want ServiceAccount %s/tsop-manager", kind, b.GetName(), subjects, namespace)
				}
			}
		}
		if n := len(objs.ofKind("ClusterRole")); n != 2 {
			t.Errorf("%d ClusterRoles, want the manager's and metrics-reader only", n)
		}
	}},
	{"digest wins over tag", m{"image": m{"repository": "registry.example.com/tsop", "tag": "v9", "digest": digest}}, func(t *testing.T, objs objects) {
		if _, ctr := deployment(t, objs); ctr.Image != "registry.example.com/tsop@"+digest {
			t.Errorf("image %q, want repository@digest", ctr.Image)
		}
	}},
	{"tag, pull policy and secrets", m{"image": m{"repository": "registry.example.com/tsop", "tag": "v1.2.3", "pullPolicy": "Never"}, "imagePullSecrets": []any{m{"name": "regcred"}}}, func(t *testing.T, objs objects) {
		d, ctr := deployment(t, objs)
		if ctr.Image != "registry.example.com/tsop:v1.2.3" || ctr.ImagePullPolicy != corev1.PullNever {
			t.Errorf("image %q %s", ctr.Image, ctr.ImagePullPolicy)
		}
		if s := d.Spec.Template.Spec.ImagePullSecrets; len(s) != 1 || s[0].Name != "regcred" {
			t.Errorf("imagePullSecrets %v", s)
		}
	}},
	{"ingress", m{"ingress": m{"enabled": true, "className": "nginx", "annotations": m{"cert-manager.io/cluster-issuer": "letsencrypt"},
		"hosts": []any{m{"host": "tsop.example.com", "paths": []any{m{"path": "/oauth2/callback", "pathType": "Exact"}}}},
		"tls":   []any{m{"secretName": "tsop-tls", "hosts": []any{"tsop.example.com"}}}},
		"callbackService": m{"type": "NodePort", "port": 8443}}, func(t *testing.T, objs objects) {
		var ing networkingv1.Ingress
		into(t, objs.must(t, "Ingress", fullname+"-oauth-callback"), &ing)
		if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" || ing.Annotations["cert-manager.io/cluster-issuer"] != "letsencrypt" ||
			len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "tsop-tls" || len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "tsop.example.com" {
			t.Fatalf("Ingress spec %+v", ing.Spec)
		}
		p := ing.Spec.Rules[0].HTTP.Paths[0]
		if p.Path != "/oauth2/callback" || *p.PathType != networkingv1.PathTypeExact || p.Backend.Service.Name != fullname+"-oauth-callback" || p.Backend.Service.Port.Name != "oauth-callback" {
			t.Errorf("Ingress path %+v", p)
		}
		var svc corev1.Service
		into(t, objs.must(t, "Service", fullname+"-oauth-callback"), &svc)
		if svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.Ports[0].Port != 8443 || svc.Spec.Ports[0].TargetPort.String() != "oauth-callback" {
			t.Errorf("callback Service %+v", svc.Spec)
		}
	}},
	{"ServiceMonitor and PodMonitor", m{"serviceMonitor": m{"enabled": true, "labels": m{"release": "prom"}, "interval": "30s", "scrapeTimeout": "10s"},
		"podMonitor": m{"enabled": true, "interval": "1m", "metricRelabelings": []any{m{"action": "drop", "regex": "go_.*", "sourceLabels": []any{"__name__"}}}}}, func(t *testing.T, objs objects) {
		sm := objs.must(t, "ServiceMonitor", fullname)
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		if sm.GetLabels()["release"] != "prom" || len(eps) != 1 || eps[0].(m)["port"] != "metrics" || eps[0].(m)["interval"] != "30s" || eps[0].(m)["scrapeTimeout"] != "10s" {
			t.Errorf("ServiceMonitor %v", sm.Object)
		}
		// The ServiceMonitor selects the metrics Service, and only it.
		sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
		for _, svc := range objs.ofKind("Service") {
			if got, want := matches(sel, svc.GetLabels()), svc.GetName() == fullname+"-metrics"; got != want {
				t.Errorf("ServiceMonitor selector %v matches Service %s: %v", sel, svc.GetName(), got)
			}
		}
		pm := objs.must(t, "PodMonitor", fullname)
		peps, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
		if len(peps) != 1 || peps[0].(m)["port"] != "metrics" || peps[0].(m)["interval"] != "1m" || peps[0].(m)["metricRelabelings"] == nil {
			t.Errorf("PodMonitor %v", pm.Object)
		}
		psel, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
		if d, _ := deployment(t, objs); !matches(psel, d.Spec.Template.Labels) {
			t.Errorf("PodMonitor selector %v does not match the pods %v", psel, d.Spec.Template.Labels)
		}
		// Secure metrics: both scrape over HTTPS with the scraper ServiceAccount's token, which is
		// bound to the metrics-reader ClusterRole (GET /metrics only).
		for _, ep := range []m{eps[0].(m), peps[0].(m)} {
			cred, _, _ := unstructured.NestedString(ep, "authorization", "credentials", "name")
			skip, _, _ := unstructured.NestedBool(ep, "tlsConfig", "insecureSkipVerify")
			if ep["scheme"] != "https" || !skip || cred != fullname+"-metrics-scraper-token" {
				t.Errorf("monitor endpoint %v: want https, insecureSkipVerify and the scraper token", ep)
			}
		}
		checkScraper(t, objs)
	}},
}
