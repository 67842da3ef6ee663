//go:build node

package node

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// The proof's workloads call their upstream every proofInterval and print, in one format whatever
// they are written in: "F <call>" for every failed call (the application's view: for the Go library
// and the sidecar, what is left after their retry), and "C <calls> <failed>" every 50 calls. The
// container log's timestamps place each line.
const (
	proofInterval = 100 * time.Millisecond
	proofMount    = "/var/run/thingspace"
)

// proxyImage is the token sidecar (cmd/thingspace-proxy), as `make image` loads it.
var proxyImage = envOr("NODE_PROXY_IMAGE", "thingspace-proxy:dev")

// proxyPort and proxyHealthPort are the sidecar's proxy (loopback only) and health ports.
const proxyPort, proxyHealthPort = 8080, 9090

// goWorkloadImage is the Go program of test/node/workload (pkg/credentials through the API), as
// `make image-workload` loads it.
var goWorkloadImage = envOr("NODE_WORKLOAD_IMAGE", "thingspace-node-workload:dev")

// readerScript is a plain reader: it reads the mounted file(s) before every call, as the README tells
// workloads to, and sends what it read. %[1]s is the workload's name, %[2]s the URL, %[3]s the reads
// and %[4]s the credential headers. Only shell builtins run per call, besides timeout and wget
// (busybox 1.35's own wget -T crashes).
const readerScript = `n=0; f=0
while :; do
  n=$((n+1))
  %[3]s
  if ! timeout 3 wget -q -O /dev/null --header "` + workloadHeader + `: %[1]s" %[4]s "%[2]s" 2>/dev/null; then
    f=$((f+1)); echo "F $n"
  fi
  [ $((n %% 50)) -ne 0 ] || echo "C $n $f"
  sleep 0.1
done`

// appReader reads the app token Secret's access_token.
func appReader(name, url string) string {
	return fmt.Sprintf(readerScript, name, url,
		`read -r t < `+proofMount+`/`+v1alpha1.SecretKeyAccessToken+` || :`,
		`--header "Authorization: Bearer $t"`)
}

// m2mReader reads both headers from an M2MSession Secret.
func m2mReader(name, url string) string {
	return fmt.Sprintf(readerScript, name, url,
		`read -r t < `+proofMount+`/`+v1alpha1.SecretKeyAccessToken+` || :; read -r s < `+proofMount+`/`+v1alpha1.SecretKeySessionToken+` || :`,
		`--header "Authorization: Bearer $t" --header "`+simulator.M2MTokenHeader+`: $s"`)
}

// plainCaller calls url with no credential at all (the sidecar adds it).
func plainCaller(name, url string) string {
	return fmt.Sprintf(readerScript, name, url, `:`, ``)
}

var restricted = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
	Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}

// proofPod is a pod of the proof: one busybox container running script, with the Secret secretName
// mounted as a whole volume when it is set (a subPath would never see a rotation).
func proofPod(name, script, secretName string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: proofNS, Name: name, Labels: map[string]string{"app": "node-proof"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			AutomountServiceAccountToken:  ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65534),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{
				Name: "app", Image: busybox, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", script}, SecurityContext: restricted,
			}},
		},
	}
	if secretName != "" {
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "credential", MountPath: proofMount, ReadOnly: true}}
		pod.Spec.Volumes = []corev1.Volume{{Name: "credential", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: secretName}}}}
	}
	return pod
}

// goWorkloadPod runs the Go workload under its own ServiceAccount, reading secretName through the API.
func goWorkloadPod(name, secretName, url string) *corev1.Pod {
	pod := proofPod(name, "", "")
	pod.Spec.ServiceAccountName = name
	pod.Spec.AutomountServiceAccountToken = ptr.To(true)
	pod.Spec.Containers[0] = corev1.Container{
		Name: "app", Image: goWorkloadImage, ImagePullPolicy: corev1.PullNever, SecurityContext: restricted,
		Args: []string{"--name=" + name, "--url=" + url, "--secret=" + secretName, "--interval=" + proofInterval.String()},
		Env: []corev1.EnvVar{{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}},
	}
	return pod
}

// sidecarPod runs the token sidecar as a native sidecar (an init container with restartPolicy Always,
// which the app container waits for until its startup probe passes) forwarding to upstream, and the
// app: busybox calling the sidecar with no credential of its own. source is the sidecar's credential
// flag: --secret=<namespace>/<name> (through the API, under the pod's own ServiceAccount) or
// --credentials-dir (the Secret mounted).
func sidecarPod(name, upstream, secretName string, viaAPI bool) *corev1.Pod {
	pod := proofPod(name, plainCaller(name, fmt.Sprintf("http://127.0.0.1:%d%s", proxyPort, proofCheckPath)), "")
	proxy := corev1.Container{
		Name: "proxy", Image: proxyImage, ImagePullPolicy: corev1.PullNever, SecurityContext: restricted,
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		Args: []string{"--upstream=" + upstream, "--allow-insecure-upstream",
			fmt.Sprintf("--listen=127.0.0.1:%d", proxyPort), fmt.Sprintf("--metrics-listen=:%d", proxyHealthPort)},
		StartupProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(proxyHealthPort)}},
			PeriodSeconds: 1, FailureThreshold: 120,
		},
	}
	if viaAPI {
		pod.Spec.ServiceAccountName = name
		pod.Spec.AutomountServiceAccountToken = ptr.To(true)
		proxy.Args = append(proxy.Args, "--secret="+proofNS+"/"+secretName)
	} else {
		proxy.Args = append(proxy.Args, "--credentials-dir="+proofMount)
		proxy.VolumeMounts = []corev1.VolumeMount{{Name: "credential", MountPath: proofMount, ReadOnly: true}}
		pod.Spec.Volumes = []corev1.Volume{{Name: "credential", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: secretName}}}}
	}
	pod.Spec.InitContainers = []corev1.Container{proxy}
	return pod
}

// secretReaderRBAC is the ServiceAccount name and a Role allowing it to read the one Secret
// secretName and nothing else (get and watch, resourceNames: the library watches by field selector),
// with its binding.
func secretReaderRBAC(name, secretName string) []client.Object {
	return []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: proofNS, Name: name}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: proofNS, Name: name},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"},
				ResourceNames: []string{secretName}, Verbs: []string{"get", "watch"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: proofNS, Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: proofNS}}},
	}
}

// tail is the last lines of a log, for a failure message.
func tailLines(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
