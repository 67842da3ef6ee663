package capture

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/argocd"
)

// root is the repository root, seen from this package.
const root = "../../.."

// updateEnv, set to "update", makes the test rewrite the captured files and their cases.
const updateEnv = "ARGOCD_CAPTURE"

const header = `# Captured from the real controllers and the simulator by make argocd-capture (test/argocd/capture).
# Only the hosts are renamed (the simulator and the callback listened on loopback ports) and the
# consent's state hash is redacted; statuses hold no secrets (the capture checks).
`

// Each scenario, driven through the real controllers, gives the health a user expects; the committed
// capture of it still has the conditions the controllers now write, and the script's verdict on it
// is the live object's.
func TestCapturedStatuses(t *testing.T) {
	e := start(t)
	update := os.Getenv(updateEnv) == "update"
	captured := map[string][]argocd.Case{}
	for _, sc := range scenarios {
		t.Run(sc.file, func(t *testing.T) {
			body := e.normalize(t, sc.kind, sc.drive(t, e))
			for _, v := range e.secretValues(t) {
				if bytes.Contains(body, []byte(v)) {
					t.Fatal("a secret value from the namespace's Secrets is in the captured status")
				}
			}
			obj := decode(t, body)
			script, err := os.ReadFile(filepath.Join(root, argocd.KindDir(sc.kind), "health.lua"))
			must(t, err)
			got, err := argocd.Evaluate(string(script), obj)
			must(t, err)
			sc.check(t, obj, got)

			path := filepath.Join(root, argocd.KindDir(sc.kind), "testdata", sc.file+".yaml")
			if update {
				must(t, os.WriteFile(path, append([]byte(header), body...), 0o644))
				captured[sc.kind] = append(captured[sc.kind], argocd.Case{HealthStatus: got, InputPath: "testdata/" + sc.file + ".yaml"})
				return
			}
			committed, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run make argocd-capture)", err)
			}
			old := decode(t, committed)
			if a, b := shape(old), shape(obj); a != b {
				t.Errorf("%s no longer matches what the controllers write (run make argocd-capture):\ncommitted %s\nlive      %s", path, a, b)
			}
			if h, err := argocd.Evaluate(string(script), old); err != nil || h.Status != got.Status {
				t.Errorf("%s: the committed capture is %+v (%v), the live object %s", path, h, err, got.Status)
			}
		})
	}
	if update && !t.Failed() {
		for kind, cases := range captured {
			must(t, argocd.UpdateCaptured(root, kind, cases))
		}
	}
}

var (
	// stateParam is an authorization URL's state (and a code, should one ever appear).
	stateParam = regexp.MustCompile(`([?&](?:state|code)=)[^&"\\\s]+`)
)

// normalize renders obj as Argo CD would read it, keeping only the metadata the scripts may use and
// renaming the loopback hosts, as YAML.
func (e *env) normalize(t *testing.T, kind string, obj client.Object) []byte {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	must(t, err)
	m["apiVersion"], m["kind"] = v1alpha1.GroupVersion.String(), kind
	m["metadata"] = map[string]any{"name": obj.GetName(), "namespace": obj.GetNamespace(), "generation": obj.GetGeneration()}
	// A consent's state hash differs on every run (and is worth nothing without the consent Secret).
	if st, ok := m["status"].(map[string]any); ok && st["consentStateHash"] != nil {
		st["consentStateHash"] = "REDACTED"
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep the URLs' & readable, for the reader and for the redaction
	must(t, enc.Encode(m))
	callbackHost := "http://" + hostOf(e.callbackURL)
	s := strings.NewReplacer(
		callbackHost, "https://thingspace-operator.example.com",
		url.QueryEscape(callbackHost), url.QueryEscape("https://thingspace-operator.example.com"),
		e.simURL, "https://thingspace-sim.example.com",
	).Replace(b.String())
	s = stateParam.ReplaceAllString(s, "${1}REDACTED")
	if strings.Contains(s, "127.0.0.1") || strings.Count(s, "state=") != strings.Count(s, "state=REDACTED") {
		t.Fatal("a loopback address or an authorization state survived the renaming")
	}
	y, err := yaml.JSONToYAML([]byte(s))
	must(t, err)
	return y
}

func hostOf(u string) string {
	rest := strings.TrimPrefix(u, "http://")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[:i]
	}
	return rest
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	m := map[string]any{}
	must(t, yaml.Unmarshal(b, &m))
	return m
}

// shape is what a capture must keep: the conditions (type, status, reason) and the status fields set.
func shape(obj map[string]any) string {
	st, _ := obj["status"].(map[string]any)
	var conds, fields []string
	for k := range st {
		fields = append(fields, k)
	}
	list, _ := st["conditions"].([]any)
	for _, c := range list {
		c, _ := c.(map[string]any)
		conds = append(conds, fmt.Sprintf("%v=%v/%v", c["type"], c["status"], c["reason"]))
	}
	sort.Strings(conds)
	sort.Strings(fields)
	return fmt.Sprintf("conditions %v, status fields %v", conds, fields)
}
