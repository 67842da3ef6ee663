package capture

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/credops/thingspace-operator/test/argocd"
)

// The README's `kubectl patch --patch-file` of the argocd-cm snippet (run with kubectl when bin/k8s has
// it, else sent as kubectl sends it: the YAML as JSON, a strategic merge patch) adds the three scripts verbatim to an existing argocd-cm and keeps
// its other keys.
func TestConfigMapPatchAppliesToArgoCDsConfigMap(t *testing.T) {
	ctx := context.Background()
	must(t, cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}))
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "argocd", Name: "argocd-cm"},
		Data: map[string]string{"url": "https://argocd.example.com"}}
	must(t, cp.Client.Create(ctx, cm))
	path := filepath.Join(root, argocd.ConfigMapPath)
	if kubectl := filepath.Join(cp.Env.BinaryAssetsDirectory, "kubectl"); fileExists(kubectl) {
		// The node tooling builds kubectl next to kube-apiserver: run the README's command itself.
		out, err := exec.Command(kubectl, "--kubeconfig", cp.KubeconfigPath, "-n", "argocd",
			"patch", "configmap", "argocd-cm", "--patch-file", path).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl patch: %v\n%s", err, out)
		}
		t.Logf("kubectl patch: %s", out)
	} else {
		raw, err := os.ReadFile(path)
		must(t, err)
		patch, err := yaml.YAMLToJSON(raw)
		must(t, err)
		must(t, cp.Client.Patch(ctx, cm, client.RawPatch(types.StrategicMergePatchType, patch)))
	}

	must(t, cp.Client.Get(ctx, client.ObjectKeyFromObject(cm), cm))
	if cm.Data["url"] != "https://argocd.example.com" || len(cm.Data) != 1+len(argocd.Kinds) {
		t.Errorf("the patch did not merge: keys %d, url %q", len(cm.Data), cm.Data["url"])
	}
	for _, kind := range argocd.Kinds {
		script, err := os.ReadFile(filepath.Join(root, argocd.KindDir(kind), "health.lua"))
		must(t, err)
		if cm.Data["resource.customizations.health."+argocd.Group+"_"+kind] != string(script) {
			t.Errorf("argocd-cm does not hold %s/health.lua verbatim", kind)
		}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
