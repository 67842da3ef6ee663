package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// examples decodes every document of examples/sidecar strictly (an unknown field fails) into the
// typed objects the sample uses.
type examples struct {
	pods     []corev1.Pod
	roles    []rbacv1.Role
	bindings []rbacv1.RoleBinding
	sas      []corev1.ServiceAccount
}

func loadExamples(t *testing.T) examples {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "sidecar", "*.yaml"))
	must(t, err)
	if len(files) == 0 {
		t.Fatal("no examples/sidecar/*.yaml")
	}
	var ex examples
	for _, file := range files {
		b, err := os.ReadFile(file)
		must(t, err)
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			must(t, err)
			var meta struct{ Kind string }
			must(t, yaml.Unmarshal(doc, &meta))
			var into any
			switch meta.Kind {
			case "":
				continue
			case "Pod":
				ex.pods = append(ex.pods, corev1.Pod{})
				into = &ex.pods[len(ex.pods)-1]
			case "Role":
				ex.roles = append(ex.roles, rbacv1.Role{})
				into = &ex.roles[len(ex.roles)-1]
			case "RoleBinding":
				ex.bindings = append(ex.bindings, rbacv1.RoleBinding{})
				into = &ex.bindings[len(ex.bindings)-1]
			case "ServiceAccount":
				ex.sas = append(ex.sas, corev1.ServiceAccount{})
				into = &ex.sas[len(ex.sas)-1]
			default:
				t.Fatalf("%s: unexpected kind %s", file, meta.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, into); err != nil {
				t.Fatalf("%s: %s: %v", filepath.Base(file), meta.Kind, err)
			}
		}
	}
	return ex
}

// The sample pods run the sidecar as a native sidecar whose arguments are valid flags, keep the
// proxy port on loopback and probe a port that is not, mount what --credentials-dir names as a
// whole Secret volume, grant --secret exactly its one Secret, and run every container under the
// restricted Pod Security Standard.
func TestSidecarExamples(t *testing.T) {
	ex := loadExamples(t)
	var dirs, apis int
	for _, pod := range ex.pods {
		t.Run(pod.Name, func(t *testing.T) {
			if len(pod.Spec.InitContainers) != 1 {
				t.Fatalf("%d init containers, want the sidecar alone", len(pod.Spec.InitContainers))
			}
			sc := pod.Spec.InitContainers[0]
			if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				t.Errorf("the sidecar is no native sidecar (restartPolicy: Always)")
			}
			if !strings.HasPrefix(sc.Image, "thingspace-proxy:") {
				t.Errorf("sidecar image %s", sc.Image)
			}
			cfg, err := ParseFlags(expandEnv(sc), io.Discard)
			if err != nil {
				t.Fatalf("sidecar args %q: %v", sc.Args, err)
			}
			if host, _, _ := net.SplitHostPort(cfg.Listen); host != "127.0.0.1" {
				t.Errorf("--listen %s is not loopback: whoever reaches it uses the pod's credential", cfg.Listen)
			}
			_, metricsPort, _ := net.SplitHostPort(cfg.MetricsListen)
			if host, _, _ := net.SplitHostPort(cfg.MetricsListen); host != "" && host != "0.0.0.0" {
				t.Errorf("--metrics-listen %s: the kubelet probes the pod IP", cfg.MetricsListen)
			}
			for name, p := range map[string]*corev1.Probe{"startup": sc.StartupProbe, "readiness": sc.ReadinessProbe, "liveness": sc.LivenessProbe} {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("no %s probe", name)
					continue
				}
				if port := namedPort(sc, p.HTTPGet.Port.String()); port != metricsPort {
					t.Errorf("%s probe on port %s, the health port is %s", name, port, metricsPort)
				}
			}
			if sc.StartupProbe != nil && sc.StartupProbe.HTTPGet != nil && sc.StartupProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("the startup probe checks %s: the workload would start before a credential is held", sc.StartupProbe.HTTPGet.Path)
			}

			switch {
			case cfg.CredentialsDir != "":
				dirs++
				checkMountedSecret(t, pod, sc, cfg.CredentialsDir)
			default:
				apis++
				checkSecretAccess(t, ex, pod, sc, cfg)
			}

			checkRestricted(t, pod)
			for _, c := range pod.Spec.Containers {
				for _, e := range c.Env {
					if strings.HasPrefix(e.Value, "http://") && !strings.HasPrefix(e.Value, "http://"+cfg.Listen) {
						t.Errorf("container %s calls %s, the sidecar listens on %s", c.Name, e.Value, cfg.Listen)
					}
				}
			}
		})
	}
	if dirs == 0 || apis == 0 {
		t.Errorf("%d pods with --credentials-dir and %d with --secret, want both variants", dirs, apis)
	}
}

func checkMountedSecret(t *testing.T, pod corev1.Pod, sc corev1.Container, dir string) {
	t.Helper()
	for _, m := range sc.VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		if m.SubPath != "" || m.SubPathExpr != "" {
			t.Errorf("%s is a subPath mount: the kubelet never updates it", dir)
		}
		for _, v := range pod.Spec.Volumes {
			if v.Name == m.Name && v.Secret != nil && len(v.Secret.Items) == 0 {
				return
			}
		}
		t.Errorf("%s is not a whole Secret volume", dir)
		return
	}
	t.Errorf("--credentials-dir %s is not mounted in the sidecar", dir)
}

func checkSecretAccess(t *testing.T, ex examples, pod corev1.Pod, sc corev1.Container, cfg Config) {
	t.Helper()
	var granted bool
	for _, b := range ex.bindings {
		if !slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Name == pod.Spec.ServiceAccountName
		}) {
			continue
		}
		for _, r := range ex.roles {
			if r.Name != b.RoleRef.Name || b.RoleRef.Kind != "Role" {
				continue
			}
			for _, rule := range r.Rules {
				if !slices.Equal(rule.ResourceNames, []string{cfg.SecretName}) {
					t.Errorf("role %s: resourceNames %v, want only %s", r.Name, rule.ResourceNames, cfg.SecretName)
				}
				if !slices.Equal(rule.Verbs, []string{"get", "watch"}) {
					t.Errorf("role %s grants %v, want get and watch only (the source needs no list)", r.Name, rule.Verbs)
				}
				if slices.Contains(rule.Resources, "secrets") && slices.Contains(rule.Verbs, "get") && slices.Contains(rule.Verbs, "watch") {
					granted = true
				}
			}
		}
	}
	if !granted {
		t.Errorf("no Role bound to %s grants get and watch on secret %s", pod.Spec.ServiceAccountName, cfg.SecretName)
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Errorf("the pod mounts a ServiceAccount token into every container; only the sidecar needs one")
	}
	if !slices.ContainsFunc(sc.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.MountPath == "/var/run/secrets/kubernetes.io/serviceaccount"
	}) {
		t.Errorf("the sidecar has no ServiceAccount token for --secret")
	}
	for _, c := range pod.Spec.Containers {
		if len(c.VolumeMounts) > 0 {
			t.Errorf("workload container %s mounts %v", c.Name, c.VolumeMounts)
		}
	}
}

// checkRestricted checks the restricted Pod Security Standard's container rules.
func checkRestricted(t *testing.T, pod corev1.Pod) {
	t.Helper()
	psc := pod.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and seccomp RuntimeDefault", psc)
	}
	for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: securityContext %+v, want no privilege escalation, all capabilities dropped, read-only root", c.Name, sc)
		}
		if c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s has no memory limit", c.Name)
		}
	}
}

// expandEnv expands $(VAR) in the container's args from its literal env and downward-API fields
// (metadata.namespace as "default"), as the kubelet does.
func expandEnv(c corev1.Container) []string {
	vals := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			vals[e.Name] = "default"
		case e.ValueFrom == nil:
			vals[e.Name] = e.Value
		}
	}
	out := make([]string, len(c.Args))
	for i, a := range c.Args {
		for k, v := range vals {
			a = strings.ReplaceAll(a, "$("+k+")", v)
		}
		out[i] = a
	}
	return out
}

func namedPort(c corev1.Container, port string) string {
	for _, p := range c.Ports {
		if p.Name == port {
			return strconv.Itoa(int(p.ContainerPort))
		}
	}
	return port
}
