package argocd

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

// The argocd-cm snippet is exactly what make argocd-cm renders from the scripts, and reading it as
// YAML gives each script back byte for byte: no hand edits, no drift.
func TestConfigMapPatchMatchesTheScripts(t *testing.T) {
	want, err := RenderConfigMap(root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, ConfigMapPath))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date: run make argocd-cm", ConfigMapPath)
	}
	var cm struct {
		Kind     string            `json:"kind"`
		Metadata map[string]any    `json:"metadata"`
		Data     map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(got, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" || cm.Metadata["name"] != "argocd-cm" || len(cm.Data) != len(Kinds) {
		t.Fatalf("not an argocd-cm patch with %d keys: %s %v, %d keys", len(Kinds), cm.Kind, cm.Metadata["name"], len(cm.Data))
	}
	for _, kind := range Kinds {
		if v := cm.Data["resource.customizations.health."+Group+"_"+kind]; v != script(t, kind) {
			t.Errorf("the %s key does not hold %s/health.lua verbatim", kind, kind)
		}
	}
}
