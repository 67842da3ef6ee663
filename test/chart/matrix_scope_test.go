package chart

import (
	"context"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// scopeCases cover what the manager may see and serve: watched namespaces, metrics, monitors and the
// optional add-ons; the last turns everything on.
var scopeCases = []matrixCase{
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
}
