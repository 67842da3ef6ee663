package chart

import (
	"cmp"
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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
	for _, c := range []struct {
		name   string
		values m
		check  func(t *testing.T, objs objects)
	}{
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
		{"watch namespaces", m{"watchNamespaces": []any{"tenant-a", "tenant-b"}}, func(t *testing.T, objs objects) {
			if _, ctr := deployment(t, objs); !slices.Contains(ctr.Args, "--watch-namespaces=tenant-a,tenant-b") {
				t.Errorf("args %v lack --watch-namespaces=tenant-a,tenant-b", ctr.Args)
			}
			// The ClusterRole keeps only the cluster-wide rules; a Role with the namespaced ones in each
			// watched namespace and the release namespace, bound to the manager.
			var wantCluster rbacv1.ClusterRole
			readYAML(t, repoPath(t, "config/watch-namespaces/rbac/manager_cluster_role.yaml"), &wantCluster)
			var cr rbacv1.ClusterRole
			into(t, objs.must(t, "ClusterRole", fullname+"-manager"), &cr)
			if !reflect.DeepEqual(cr.Rules, wantCluster.Rules) {
				t.Errorf("manager ClusterRole rules %+v, want config/watch-namespaces' %+v", cr.Rules, wantCluster.Rules)
			}
			var wantNS rbacv1.Role
			readYAML(t, repoPath(t, "config/watch-namespaces/rbac/manager_role.yaml"), &wantNS)
			var seen []string
			for _, o := range objs.ofKind("Role") {
				if o.GetName() != fullname+"-manager" {
					continue
				}
				var r rbacv1.Role
				into(t, o, &r)
				seen = append(seen, r.Namespace)
				if !reflect.DeepEqual(r.Rules, wantNS.Rules) {
					t.Errorf("Role %s/%s rules %+v, want config/watch-namespaces' %+v", r.Namespace, r.Name, r.Rules, wantNS.Rules)
				}
				var rb rbacv1.RoleBinding
				for _, b := range objs.ofKind("RoleBinding") {
					if b.GetName() == r.Name && b.GetNamespace() == r.Namespace {
						into(t, b, &rb)
					}
				}
				if rb.RoleRef.Name != r.Name || len(rb.Subjects) != 1 || rb.Subjects[0].Name != fullname || rb.Subjects[0].Namespace != namespace {
					t.Errorf("RoleBinding of %s/%s: %+v", r.Namespace, r.Name, rb)
				}
			}
			slices.Sort(seen)
			if want := []string{namespace, "tenant-a", "tenant-b"}; !slices.Equal(seen, sortedCopy(want)) {
				t.Errorf("manager Roles in %v, want %v", seen, want)
			}
			for _, r := range cr.Rules {
				if slices.Contains(r.Resources, "secrets") {
					t.Errorf("the ClusterRole still grants Secrets: %+v", r)
				}
			}
			// The watched namespaces exist by the time anyone installs into them (the dry-run needs them).
			for _, ns := range []string{"tenant-a", "tenant-b"} {
				if err := apiServer(t).Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
					t.Fatal(err)
				}
			}
		}},
		{"insecure metrics", m{"metrics": m{"secure": false}, "serviceMonitor": m{"enabled": true}, "podMonitor": m{"enabled": true}}, func(t *testing.T, objs objects) {
			if _, ctr := deployment(t, objs); !slices.Contains(ctr.Args, "--metrics-secure=false") {
				t.Errorf("args %v lack --metrics-secure=false", ctr.Args)
			}
			sm := objs.must(t, "ServiceMonitor", fullname)
			eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			pm := objs.must(t, "PodMonitor", fullname)
			peps, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
			for _, ep := range []m{eps[0].(m), peps[0].(m)} {
				if ep["scheme"] != "http" || ep["authorization"] != nil {
					t.Errorf("monitor endpoint %v: want plain http without a token", ep)
				}
			}
			if objs.get("ServiceAccount", fullname+"-metrics-scraper") != nil {
				t.Error("a scraper ServiceAccount with insecure metrics")
			}
		}},
		{"network policy", m{"networkPolicy": m{"enabled": true,
			"metricsFrom": []any{m{"namespaceSelector": m{"matchLabels": m{"kubernetes.io/metadata.name": "monitoring"}}}},
			"egress":      []any{m{"ports": []any{m{"port": 443, "protocol": "TCP"}}}}}}, func(t *testing.T, objs objects) {
			var np networkingv1.NetworkPolicy
			into(t, objs.must(t, "NetworkPolicy", fullname), &np)
			if len(np.Spec.Ingress) != 3 || len(np.Spec.Ingress[0].From) != 0 || len(np.Spec.Ingress[1].From) != 1 || len(np.Spec.Egress) != 1 ||
				!slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
				t.Errorf("NetworkPolicy %+v", np.Spec)
			}
			if d, _ := deployment(t, objs); !matches(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) {
				t.Errorf("NetworkPolicy selects %v, not the manager pods", np.Spec.PodSelector.MatchLabels)
			}
		}},
		{"allowed endpoint hosts", m{"allowedEndpointHosts": []any{"thingspace.verizon.com", "proxy.internal:8443", "[fd00::1]:*"}}, func(t *testing.T, objs objects) {
			_, ctr := deployment(t, objs)
			if !slices.Contains(ctr.Args, "--allowed-endpoint-hosts=thingspace.verizon.com,proxy.internal:8443,[fd00::1]:*") {
				t.Errorf("args %v: want the hosts joined in one --allowed-endpoint-hosts", ctr.Args)
			}
		}},
		{"extra args and env (GOMEMLIMIT from extraEnv wins)", m{"extraArgs": []any{"--max-concurrent-reconciles=20", "--zap-log-level=debug"},
			"extraEnv": []any{m{"name": "TZ", "value": "UTC"}, m{"name": "GOMEMLIMIT", "value": "100MiB"}}}, func(t *testing.T, objs objects) {
			_, ctr := deployment(t, objs)
			if n := len(ctr.Args); n < 2 || ctr.Args[n-2] != "--max-concurrent-reconciles=20" || ctr.Args[n-1] != "--zap-log-level=debug" {
				t.Errorf("args %v: want the extra args last", ctr.Args)
			}
			if g := env(ctr, "GOMEMLIMIT"); len(g) != 1 || g[0].Value != "100MiB" {
				t.Errorf("GOMEMLIMIT %v, want the user's 100MiB only", g)
			}
			if tz := env(ctr, "TZ"); len(tz) != 1 || tz[0].Value != "UTC" {
				t.Errorf("TZ %v", tz)
			}
		}},
		{"custom security contexts and resources", m{"podSecurityContext": m{"runAsNonRoot": true, "runAsUser": 65532, "fsGroup": 65532, "seccompProfile": m{"type": "RuntimeDefault"}},
			"securityContext": m{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsUser": 65532, "capabilities": m{"drop": []any{"ALL"}}},
			"resources":       m{"requests": m{"cpu": "100m", "memory": "512Mi"}, "limits": m{"cpu": "1", "memory": "1Gi"}}}, func(t *testing.T, objs objects) {
			d, ctr := deployment(t, objs)
			if p := d.Spec.Template.Spec.SecurityContext; p.RunAsUser == nil || *p.RunAsUser != 65532 || p.FSGroup == nil || *p.FSGroup != 65532 {
				t.Errorf("pod securityContext %+v", p)
			}
			if ctr.SecurityContext.RunAsUser == nil || *ctr.SecurityContext.RunAsUser != 65532 {
				t.Errorf("container securityContext %+v", ctr.SecurityContext)
			}
			if ctr.Resources.Limits.Memory().String() != "1Gi" || ctr.Resources.Limits.Cpu().String() != "1" {
				t.Errorf("resources %+v", ctr.Resources)
			}
			if g := env(ctr, "GOMEMLIMIT"); len(g) != 1 || g[0].Value != "966367641" {
				t.Errorf("GOMEMLIMIT %v, want 90%% of 1Gi = 966367641", g)
			}
		}},
		{"scheduling and pod metadata", m{"nodeSelector": m{"kubernetes.io/os": "linux"},
			"tolerations":               []any{m{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}},
			"affinity":                  m{"nodeAffinity": m{"requiredDuringSchedulingIgnoredDuringExecution": m{"nodeSelectorTerms": []any{m{"matchExpressions": []any{m{"key": "kubernetes.io/arch", "operator": "In", "values": []any{"amd64", "arm64"}}}}}}}},
			"topologySpreadConstraints": []any{m{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}},
			"priorityClassName":         "system-cluster-critical", "replicaCount": 2,
			"podLabels": m{"team": "ops"}, "podAnnotations": m{"example.com/scrape": "false"}}, func(t *testing.T, objs objects) {
			d, _ := deployment(t, objs)
			s := d.Spec.Template.Spec
			if s.NodeSelector["kubernetes.io/os"] != "linux" || len(s.Tolerations) != 1 || s.PriorityClassName != "system-cluster-critical" ||
				s.Affinity == nil || s.Affinity.NodeAffinity == nil || s.Affinity.PodAntiAffinity != nil {
				t.Errorf("pod spec scheduling %+v (a user's affinity replaces the default anti-affinity)", s)
			}
			if len(s.TopologySpreadConstraints) != 1 || s.TopologySpreadConstraints[0].LabelSelector == nil ||
				!matches(s.TopologySpreadConstraints[0].LabelSelector.MatchLabels, d.Spec.Template.Labels) {
				t.Errorf("topologySpreadConstraints %+v: want the pods' own labels as default labelSelector", s.TopologySpreadConstraints)
			}
			if d.Spec.Template.Labels["team"] != "ops" || d.Spec.Template.Annotations["example.com/scrape"] != "false" ||
				d.Spec.Template.Annotations["kubectl.kubernetes.io/default-container"] != "manager" {
				t.Errorf("pod metadata %+v", d.Spec.Template.ObjectMeta)
			}
		}},
		{"ports, lease timings and names", m{"ports": m{"metrics": 9090, "health": 9091, "callback": 9092}, "metricsService": m{"port": 9443},
			"leaderElection": m{"leaseDuration": "30s", "renewDeadline": "20s", "retryPeriod": "5s"}, "fullnameOverride": "tso"}, func(t *testing.T, objs objects) {
			d, ctr := deployment(t, objs)
			if d.Name != "tso" {
				t.Errorf("Deployment %s, want tso", d.Name)
			}
			for _, a := range []string{"--metrics-bind-address=:9090", "--health-probe-bind-address=:9091", "--oauth-callback-bind-address=:9092",
				"--leader-elect-lease-duration=30s", "--leader-elect-renew-deadline=20s", "--leader-elect-retry-period=5s"} {
				if !slices.Contains(ctr.Args, a) {
					t.Errorf("args %v lack %s", ctr.Args, a)
				}
			}
			for name, port := range map[string]int32{"metrics": 9090, "health": 9091, "oauth-callback": 9092} {
				if i := slices.IndexFunc(ctr.Ports, func(p corev1.ContainerPort) bool { return p.Name == name }); i < 0 || ctr.Ports[i].ContainerPort != port {
					t.Errorf("container port %s: %v, want %d", name, ctr.Ports, port)
				}
			}
			var svc corev1.Service
			into(t, objs.must(t, "Service", "tso-metrics"), &svc)
			if svc.Spec.Ports[0].Port != 9443 || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
				t.Errorf("metrics Service ports %+v", svc.Spec.Ports)
			}
			objs.must(t, "ClusterRole", "tso-manager")
		}},
		{"no metrics Service, no GOMEMLIMIT", m{"metricsService": m{"enabled": false}, "goMemLimitPercent": 0}, func(t *testing.T, objs objects) {
			if objs.get("Service", fullname+"-metrics") != nil {
				t.Error("metrics Service rendered with metricsService.enabled false")
			}
			// Only the downward API's namespace, the default of --cluster-resource-namespace.
			if _, ctr := deployment(t, objs); len(ctr.Env) != 1 || ctr.Env[0].Name != "POD_NAMESPACE" ||
				ctr.Env[0].ValueFrom == nil || ctr.Env[0].ValueFrom.FieldRef == nil || ctr.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
				t.Errorf("env %v, want POD_NAMESPACE only", ctr.Env)
			}
		}},
		{"cluster resource namespace", m{"clusterResourceNamespace": "platform"}, func(t *testing.T, objs objects) {
			if _, ctr := deployment(t, objs); !slices.Contains(ctr.Args, "--cluster-resource-namespace=platform") {
				t.Errorf("args %v lack --cluster-resource-namespace=platform", ctr.Args)
			}
		}},
		{"no drain hook", m{"drainOnUninstall": m{"enabled": false}}, func(t *testing.T, objs objects) {
			if h := objs.hooks(); len(h) != 0 {
				t.Errorf("hooks %v with drainOnUninstall.enabled false", h.kinds())
			}
		}},
		{"drain hook timeout and resources", m{"drainOnUninstall": m{"timeout": "4m", "resources": m{"requests": m{"cpu": "5m", "memory": "16Mi"}, "limits": m{"memory": "48Mi"}}}}, func(t *testing.T, objs objects) {
			pod := checkDrainHook(t, objs, "4m")
			if r := pod.Spec.Containers[0].Resources; r.Limits.Memory().String() != "48Mi" || r.Requests.Cpu().String() != "5m" {
				t.Errorf("drain resources %+v", r)
			}
		}},
		{"everything on", everything(), func(t *testing.T, objs objects) {
			for _, k := range []string{"PodDisruptionBudget", "Ingress", "NetworkPolicy", "ServiceMonitor", "PodMonitor"} {
				if len(objs.ofKind(k)) != 1 {
					t.Errorf("want one %s, got %v", k, objs.kinds())
				}
			}
		}},
	} {
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
