package argocd

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

// root is the repository root, seen from this package.
const root = "../.."

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadTests(t *testing.T, kind string) HealthTests {
	t.Helper()
	ht, err := ReadHealthTests(root, kind)
	if err != nil {
		t.Fatal(err)
	}
	if len(ht.Tests) == 0 {
		t.Fatalf("%s: no tests", kind)
	}
	return ht
}

func script(t *testing.T, kind string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, KindDir(kind), "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every case of every health_test.yaml gives its status and message, as Argo CD's own test of
// resource_customizations does.
func TestHealthChecks(t *testing.T) {
	for _, kind := range Kinds {
		lua := script(t, kind)
		for _, tc := range loadTests(t, kind).Tests {
			t.Run(kind+"/"+tc.InputPath, func(t *testing.T) {
				obj := map[string]any{}
				readYAML(t, filepath.Join(root, KindDir(kind), tc.InputPath), &obj)
				if obj["kind"] != kind {
					t.Fatalf("the object is a %v", obj["kind"])
				}
				got, err := Evaluate(lua, obj)
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.HealthStatus {
					t.Errorf("got %+v\nwant %+v", got, tc.HealthStatus)
				}
			})
		}
	}
}

// Every testdata file is used by a case, and every kind's cases reach each status the kind can have.
func TestEveryTestdataFileIsACase(t *testing.T) {
	want := map[string][]string{
		"ThingSpaceApp":        {"Healthy", "Progressing", "Degraded"},
		"M2MSession":           {"Healthy", "Progressing", "Degraded"},
		"CloudAuthorization":   {"Healthy", "Progressing", "Degraded", "Suspended"},
		"ClusterThingSpaceApp": {"Healthy", "Progressing", "Degraded"},
		"ClusterM2MSession":    {"Healthy", "Progressing", "Degraded"},
	}
	for _, kind := range Kinds {
		used, seen := map[string]bool{}, map[string]bool{}
		for _, tc := range loadTests(t, kind).Tests {
			used[filepath.Clean(tc.InputPath)] = true
			seen[tc.HealthStatus.Status] = true
		}
		files, err := filepath.Glob(filepath.Join(root, KindDir(kind), "testdata", "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if rel := filepath.Join("testdata", filepath.Base(f)); !used[rel] {
				t.Errorf("%s: %s is in no case of health_test.yaml", kind, rel)
			}
		}
		for _, s := range want[kind] {
			if !seen[s] {
				t.Errorf("%s: no case is %s", kind, s)
			}
		}
	}
}

// The scripts survive sparse objects: no status, an empty status, conditions without reason or message.
func TestHealthChecksTolerateSparseObjects(t *testing.T) {
	objs := []map[string]any{
		{},
		{"status": map[string]any{"observedGeneration": int64(1)}},
		{"metadata": map[string]any{}},
		{"metadata": map[string]any{}, "status": map[string]any{}},
		{"metadata": map[string]any{"generation": int64(1)}, "status": map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": "False"}}}},
		{"metadata": map[string]any{}, "status": map[string]any{"conditions": []any{map[string]any{"type": "Authorized", "status": "False", "reason": "AuthorizationPending"}}}},
	}
	for _, kind := range Kinds {
		lua := script(t, kind)
		for i, obj := range objs {
			if _, err := Evaluate(lua, obj); err != nil {
				t.Errorf("%s, object %d: %v", kind, i, err)
			}
		}
	}
}
