package chart

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/credops/thingspace-operator/test/harness"
)

const (
	release   = "tsop"
	namespace = "tsop-system"
	// fullname is the chart's name prefix for release "tsop" (release name + chart name).
	fullname = "tsop-thingspace-operator"
)

// helmHome keeps helm's config, cache and data out of the user's home; set by TestMain.
var helmHome string

// repoPath is a path under the repository root.
func repoPath(t testing.TB, elem ...string) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(append([]string{root}, elem...)...)
}

func chartDir(t testing.TB) string { return repoPath(t, "charts", "thingspace-operator") }

// helmBin is $HELM, else <repo>/bin/helm. Missing: a failure when HELM names it (`make test` does) or
// in CI (CI set); a skip only for a bare `go test` on a developer's machine.
func helmBin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("HELM")
	if bin == "" {
		bin = repoPath(t, "bin", "helm")
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		msg := fmt.Sprintf("no helm at %s (HELM=%q): run `make helm`, or run these tests through `make test`", bin, os.Getenv("HELM"))
		if os.Getenv("CI") != "" || os.Getenv("HELM") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// runHelm runs helm with args and returns its stdout; the error carries stderr.
func runHelm(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"),
		"HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"),
		"HELM_DATA_HOME="+filepath.Join(helmHome, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.Bytes(), nil
}

// valuesFile writes values (nil: none) to a file for helm's -f.
func valuesFile(t testing.TB, values map[string]any) string {
	t.Helper()
	data, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	// Not under t.TempDir(): helm splits -f on commas, and subtest names have them.
	f, err := os.CreateTemp(helmHome, "values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// template runs `helm template` of the chart as release tsop in tsop-system with values.
func template(t testing.TB, values map[string]any, extra ...string) ([]byte, error) {
	t.Helper()
	args := append([]string{"template", release, chartDir(t), "--namespace", namespace, "-f", valuesFile(t, values)}, extra...)
	return runHelm(t, args...)
}

// render is template that must succeed, decoded into objects.
func render(t testing.TB, values map[string]any) objects {
	t.Helper()
	out, err := template(t, values)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(out)
	if err != nil {
		t.Fatalf("decode helm template output: %v", err)
	}
	if len(objs) == 0 {
		t.Fatal("helm template rendered no objects")
	}
	return objs
}

type objects []*unstructured.Unstructured

// decode splits a multi-document YAML stream into objects, skipping empty documents.
func decode(data []byte) (objects, error) {
	var objs objects
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("%w in:\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// kinds lists kind/name of every object, for failure messages and checks.
func (objs objects) kinds() []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

// get returns the object of kind and name, or nil.
func (objs objects) get(kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// ofKind returns the objects of kind.
func (objs objects) ofKind(kind string) objects {
	var out objects
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// must returns the object of kind and name, failing the test without it.
func (objs objects) must(t testing.TB, kind, name string) *unstructured.Unstructured {
	t.Helper()
	o := objs.get(kind, name)
	if o == nil {
		t.Fatalf("no %s %s rendered; got %v", kind, name, objs.kinds())
	}
	return o
}

// into converts an object into a typed one through JSON.
func into(t testing.TB, o *unstructured.Unstructured, typed any) {
	t.Helper()
	data, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, typed); err != nil {
		t.Fatalf("%s %s into %T: %v", o.GetKind(), o.GetName(), typed, err)
	}
}

// readYAML reads one YAML document of the repository into a typed object.
func readYAML(t testing.TB, path string, typed any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, typed); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
