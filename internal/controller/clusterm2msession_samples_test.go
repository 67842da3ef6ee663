package controller

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The samples of config/samples/cluster pass the API server's schema (CEL rules included): each is
// created with a dry run, the namespaced ones in the test's namespace.
func TestClusterSamplesPassTheSchema(t *testing.T) {
	f := newFixture(t)
	dir := filepath.Join("..", "..", "config", "samples", "cluster")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	must(t, err)
	kinds := map[string]int{}
	for _, file := range files {
		if filepath.Base(file) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(file)
		must(t, err)
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if u.Object == nil {
				continue
			}
			if u.GetNamespace() != "" {
				u.SetNamespace(f.ns)
			}
			if err := k8s.Create(ctx, u, client.DryRunAll); err != nil {
				t.Errorf("%s: %s %s: %v", filepath.Base(file), u.GetKind(), u.GetName(), err)
			}
			kinds[u.GetKind()]++
		}
	}
	for _, k := range []string{"Secret", "ClusterThingSpaceApp", "ClusterM2MSession", "ThingSpaceApp", "M2MSession"} {
		if kinds[k] == 0 {
			t.Errorf("no %s sample", k)
		}
	}
}
