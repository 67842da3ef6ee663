package argocd

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// kstatusTypes are the condition types of the kstatus conventions (issue 12 section 1). The scripts
// honour them before the API defines them, so hand-written testdata may use them.
var kstatusTypes = map[string]bool{"Stalled": true, "Reconciling": true}

// apiConstants reads the string constants of api/v1alpha1 whose names start with prefix, by value.
func apiConstants(t *testing.T, prefix string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(root, "api", "v1alpha1", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, prefix) || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					out[v] = name.Name
				}
			}
			return true
		})
	}
	if len(out) == 0 {
		t.Fatalf("no %s constants in api/v1alpha1", prefix)
	}
	return out
}

// Every condition in the testdata has a type and a reason the API defines: a renamed or removed reason
// fails here, and with it every capture that no longer matches what the controllers can write.
func TestTestdataUsesTheAPIsConditions(t *testing.T) {
	reasons, types := apiConstants(t, "Reason"), apiConstants(t, "Condition")
	for _, kind := range Kinds {
		for _, tc := range loadTests(t, kind).Tests {
			var obj struct {
				Status struct {
					Conditions []struct {
						Type, Status, Reason string
					} `json:"conditions"`
				} `json:"status"`
			}
			path := filepath.Join(root, KindDir(kind), tc.InputPath)
			objMap := map[string]any{}
			readYAML(t, path, &objMap)
			b, _ := json.Marshal(objMap)
			if err := json.Unmarshal(b, &obj); err != nil {
				t.Fatal(err)
			}
			captured := IsCaptured(path)
			for _, c := range obj.Status.Conditions {
				if _, ok := types[c.Type]; !ok && (captured || !kstatusTypes[c.Type]) {
					t.Errorf("%s: condition type %q is not in api/v1alpha1", tc.InputPath, c.Type)
				}
				if _, ok := reasons[c.Reason]; !ok {
					t.Errorf("%s: reason %q is not in api/v1alpha1", tc.InputPath, c.Reason)
				}
				if c.Status != "True" && c.Status != "False" && c.Status != "Unknown" {
					t.Errorf("%s: condition %s has status %q", tc.InputPath, c.Type, c.Status)
				}
			}
		}
	}
}

// luaReasons finds the reasons a script names: keys of its reason tables and compared strings.
var luaReasons = regexp.MustCompile(`(?m)^\s+([A-Z][A-Za-z]+) = true,$|reason == "([A-Za-z]+)"`)

// Every reason a script names exists in the API, so a renamed reason cannot silently turn a Degraded
// state into Progressing.
func TestScriptsNameOnlyTheAPIsReasons(t *testing.T) {
	reasons := apiConstants(t, "Reason")
	for _, kind := range Kinds {
		var named []string
		for _, m := range luaReasons.FindAllStringSubmatch(script(t, kind), -1) {
			named = append(named, m[1]+m[2])
		}
		if len(named) < 3 {
			t.Fatalf("%s: found only %v in the script", kind, named)
		}
		sort.Strings(named)
		for _, r := range named {
			if _, ok := reasons[r]; !ok {
				t.Errorf("%s/health.lua names reason %q, which is not in api/v1alpha1", kind, r)
			}
		}
	}
}
