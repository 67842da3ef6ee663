//go:build node

package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/test/harness"
)

// kustomizeNS is where config/default puts the manager.
const kustomizeNS = "thingspace-operator-system"

func tagOf(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return "latest"
}

func repoOf(ref string) string { return strings.TrimSuffix(ref, ":"+tagOf(ref)) }

// normalized is ref as containerd names it (docker.io/library/... for a bare name).
func normalized(ref string) string {
	first, _, found := strings.Cut(ref, "/")
	switch {
	case !found:
		return "docker.io/library/" + ref
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		return "docker.io/" + ref
	}
	return ref
}

// retag gives the image loaded into the node a second tag, as a new release of the same build.
func retag(t *testing.T, from, to string) {
	t.Helper()
	run(t, "ctr", "--address", ctrAddress, "--namespace", "k8s.io", "images", "tag", "--force", normalized(from), normalized(to))
}

// assertImage fails t unless every manager pod runs image.
func assertImage(t *testing.T, image string) {
	t.Helper()
	list := &corev1.PodList{}
	must(t, k8s.List(t.Context(), list, client.InNamespace(operatorNS), client.MatchingLabels{"app.kubernetes.io/name": "thingspace-operator"}))
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Spec.Containers {
			if c.Image != image {
				t.Errorf("pod %s runs %s, want %s", p.Name, c.Image, image)
			}
		}
	}
}

var crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// assertKept fails t unless the CRDs, the tenant's custom resources and their Secrets outlived the
// release.
func assertKept(t *testing.T) {
	t.Helper()
	for _, name := range []string{"thingspaceapps", "m2msessions", "cloudauthorizations"} {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(crdGVK)
		if err := k8s.Get(t.Context(), types.NamespacedName{Name: name + ".thingspace.credops.io"}, crd); err != nil {
			t.Fatalf("CRD %s after uninstall: %v", name, err)
		}
	}
	for _, obj := range []client.Object{tenantApp(), tenantSession(), tenantCloud()} {
		must(t, k8s.Get(t.Context(), client.ObjectKeyFromObject(obj), obj))
	}
	for _, s := range []string{appSecretName, sessionSecret, cloudSecret} {
		if data, _ := secretData(t, s); data == nil {
			t.Fatalf("Secret %s gone after uninstall", s)
		}
	}
}

// deployKustomize installs config/default, as `make deploy` does, with the node's image, plain-http
// endpoints, the simulators' hosts as the allow-list and short lease timings patched in by an overlay, and applies it server-side.
func deployKustomize(t *testing.T) {
	t.Helper()
	kustomizeApply(t, "config/default", "", "controller", image, fmt.Sprintf(`- target: {kind: Deployment, name: controller-manager}
  patch: |-
    - {op: add, path: /spec/template/spec/containers/0/imagePullPolicy, value: Never}
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: --allow-insecure-endpoints}
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: "--allowed-endpoint-hosts=%s"}
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: --upstream-timeout=5s}
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: --leader-elect-lease-duration=%s}
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: --leader-elect-renew-deadline=%s}
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: --leader-elect-retry-period=%s}
`, strings.Join(allowedHosts(), ","), leaseDuration, renewDeadline, retryPeriod))
}

// kustomizeApply builds an overlay of the repository's dir (namespace ns unless empty) with image
// name set to ref and patches (a YAML list, indented for the patches key), and applies the result
// server-side.
func kustomizeApply(t *testing.T, dir, ns, name, ref, patches string) {
	t.Helper()
	tmp := t.TempDir()
	overlay := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- %s
images:
- name: %s
  newName: %s
  newTag: %s
patches:
%s`, relPath(t, tmp, filepath.Join(repo, dir)), name, repoOf(ref), tagOf(ref), patches)
	if ns != "" {
		overlay += "namespace: " + ns + "\n"
	}
	must(t, os.WriteFile(filepath.Join(tmp, "kustomization.yaml"), []byte(overlay), 0o600))
	applyAll(t, run(t, kustomize, "build", tmp))
}

func relPath(t *testing.T, from, to string) string {
	t.Helper()
	rel, err := filepath.Rel(from, to)
	must(t, err)
	return rel
}

// applyAll applies every object of a multi-document YAML stream server-side, namespaces and CRDs
// first.
func applyAll(t *testing.T, stream []byte) {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	var first, rest []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decode rendered manifests: %v", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if k := u.GetKind(); k == "Namespace" || k == "CustomResourceDefinition" {
			first = append(first, u)
		} else {
			rest = append(rest, u)
		}
	}
	for _, u := range append(first, rest...) {
		if err := k8s.Apply(t.Context(), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("node-test"), client.ForceOwnership); err != nil {
			t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// waitNodeReady waits for the node to be Ready.
func waitNodeReady(ctx context.Context) error {
	return harness.WaitFor(ctx, time.Minute, time.Second, func() (bool, error) {
		n := &corev1.Node{}
		if err := k8s.Get(ctx, types.NamespacedName{Name: "localhost"}, n); err != nil {
			return false, nil
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
}

// setKubeletSyncFrequency restarts the node's kubelet with another syncFrequency (running pods stay).
func setKubeletSyncFrequency(t *testing.T, d string) {
	t.Helper()
	run(t, filepath.Join(repo, "hack", "cluster", "kubelet-sync.sh"), d)
	must(t, waitNodeReady(t.Context()))
}

// assertManagerProcesses fails t unless every manager process on the node runs as the image's
// non-root user (65532), which the restricted securityContext and the read-only root filesystem of
// the chart rely on. The tests share the node's PID view, so /proc shows the containers' processes.
func assertManagerProcesses(t *testing.T) {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	must(t, err)
	found := 0
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.HasPrefix(b, []byte("/manager\x00")) {
			continue
		}
		status, err := os.ReadFile(filepath.Join(filepath.Dir(f), "status"))
		if err != nil {
			continue
		}
		found++
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "Uid:") && strings.Fields(line)[1] != "65532" {
				t.Errorf("a manager process runs as uid %s, want 65532", strings.Fields(line)[1])
			}
		}
	}
	if found == 0 {
		t.Error("no manager process found on the node")
	}
}
