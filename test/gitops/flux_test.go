package gitops

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/credops/thingspace-operator/test/harness"
)

// The Flux example (examples/flux) is what the README shows: Flux v1 Kustomizations with wait: true
// and a short timeout, building paths that exist, whose credentials Kustomization applies every kind
// of the operator. What Flux's wait then does with them is kstatus's verdict, which the kstatus tests
// above check on the live objects: Current when Ready, Failed (Flux stops waiting at once) when
// Stalled, InProgress while a generation is being acted on.
func TestFluxExample(t *testing.T) {
	root, err := harness.RepoRoot()
	must(t, err)
	dir := filepath.Join(root, "examples", "flux")
	var kz struct {
		Resources []string `json:"resources"`
	}
	readYAML(t, filepath.Join(dir, "kustomization.yaml"), &kz)
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	must(t, err)
	if len(files) != len(kz.Resources)+1 {
		t.Errorf("examples/flux/kustomization.yaml lists %v, the directory holds %d other files", kz.Resources, len(files)-1)
	}

	sources := map[string]bool{}
	var kustomizations []*unstructured.Unstructured
	for _, f := range kz.Resources {
		u := &unstructured.Unstructured{}
		readYAML(t, filepath.Join(dir, f), &u.Object)
		switch u.GetAPIVersion() + " " + u.GetKind() {
		case "source.toolkit.fluxcd.io/v1 GitRepository":
			sources[u.GetName()] = true
		case "kustomize.toolkit.fluxcd.io/v1 Kustomization":
			kustomizations = append(kustomizations, u)
		default:
			t.Errorf("%s: unexpected %s %s", f, u.GetAPIVersion(), u.GetKind())
		}
	}
	names := map[string]bool{}
	for _, k := range kustomizations {
		names[k.GetName()] = true
	}

	kinds := map[string]bool{}
	for _, k := range kustomizations {
		name := k.GetName()
		if wait, _, _ := unstructured.NestedBool(k.Object, "spec", "wait"); !wait {
			t.Errorf("%s: spec.wait is not true", name)
		}
		timeout, _, _ := unstructured.NestedString(k.Object, "spec", "timeout")
		if d, err := time.ParseDuration(timeout); err != nil || d <= 0 || d > 5*time.Minute {
			t.Errorf("%s: spec.timeout %q is not a short duration (%v)", name, timeout, err)
		}
		for _, f := range []string{"interval", "retryInterval"} {
			if v, ok, _ := unstructured.NestedString(k.Object, "spec", f); ok {
				if _, err := time.ParseDuration(v); err != nil {
					t.Errorf("%s: spec.%s: %v", name, f, err)
				}
			}
		}
		if src, _, _ := unstructured.NestedString(k.Object, "spec", "sourceRef", "name"); !sources[src] {
			t.Errorf("%s: sourceRef %q is not in the example", name, src)
		}
		deps, _, _ := unstructured.NestedSlice(k.Object, "spec", "dependsOn")
		for _, d := range deps {
			if n, _ := d.(map[string]any)["name"].(string); !names[n] {
				t.Errorf("%s: dependsOn %q is not in the example", name, n)
			}
		}
		path, _, _ := unstructured.NestedString(k.Object, "spec", "path")
		for kind := range builtKinds(t, filepath.Join(root, path)) {
			kinds[kind] = true
		}
	}
	for _, kind := range []string{kindApp, kindSession, kindCloud, "CustomResourceDefinition", "Deployment"} {
		if !kinds[kind] {
			t.Errorf("no Kustomization of the example applies a %s", kind)
		}
	}
}

// builtKinds lists the kinds a kustomize directory's resources hold, following directories (no
// patches or generators are needed for that).
func builtKinds(t *testing.T, dir string) map[string]bool {
	t.Helper()
	var kz struct {
		Resources []string `json:"resources"`
	}
	readYAML(t, filepath.Join(dir, "kustomization.yaml"), &kz)
	if len(kz.Resources) == 0 {
		t.Fatalf("%s: no resources", dir)
	}
	out := map[string]bool{}
	for _, r := range kz.Resources {
		p := filepath.Join(dir, r)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			for k := range builtKinds(t, p) {
				out[k] = true
			}
			continue
		}
		b, err := os.ReadFile(p)
		must(t, err)
		for _, doc := range splitYAML(b) {
			var head struct {
				Kind string `json:"kind"`
			}
			must(t, yaml.Unmarshal(doc, &head))
			if head.Kind != "" {
				out[head.Kind] = true
			}
		}
	}
	return out
}

// splitYAML splits a multi-document YAML file.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSeparator.Split(string(b), -1) {
		docs = append(docs, []byte(d))
	}
	return docs
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*\r?$`)

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	must(t, yaml.Unmarshal(b, into))
}
