package argocd

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// Case is one entry of a health_test.yaml: the health a script must give for the object at InputPath
// (relative to the kind's folder).
type Case struct {
	HealthStatus Health `json:"healthStatus"`
	InputPath    string `json:"inputPath"`
}

// HealthTests is a kind's health_test.yaml, in Argo CD's upstream layout.
type HealthTests struct {
	Tests []Case `json:"tests"`
}

// IsCaptured reports whether a case's input was captured from the real controllers.
func IsCaptured(inputPath string) bool {
	return strings.HasPrefix(filepath.Base(inputPath), CapturedPrefix)
}

// CapturedPrefix starts the name of every testdata file captured from the real controllers.
const CapturedPrefix = "captured-"

// ReadHealthTests reads kind's health_test.yaml under root.
func ReadHealthTests(root, kind string) (HealthTests, error) {
	var ht HealthTests
	b, err := os.ReadFile(filepath.Join(root, KindDir(kind), "health_test.yaml"))
	if err == nil {
		err = yaml.UnmarshalStrict(b, &ht)
	}
	return ht, err
}

// UpdateCaptured replaces the captured cases of kind's health_test.yaml with captured, keeping the
// hand-written ones first, in their order.
func UpdateCaptured(root, kind string, captured []Case) error {
	ht, err := ReadHealthTests(root, kind)
	if err != nil {
		return err
	}
	var cases []Case
	for _, c := range ht.Tests {
		if !IsCaptured(c.InputPath) {
			cases = append(cases, c)
		}
	}
	cases = append(cases, captured...)
	var b bytes.Buffer
	b.WriteString("tests:\n")
	for _, c := range cases {
		msg, err := quote(c.HealthStatus.Message)
		if err != nil {
			return err
		}
		b.WriteString("- healthStatus:\n    status: " + c.HealthStatus.Status + "\n    message: " + msg + "\n  inputPath: " + c.InputPath + "\n")
	}
	return os.WriteFile(filepath.Join(root, KindDir(kind), "health_test.yaml"), b.Bytes(), 0o644)
}

// quote writes s as a JSON string, which YAML reads as a double-quoted scalar.
func quote(s string) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
