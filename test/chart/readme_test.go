package chart

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The README's values table ("Install with Helm") documents every value of values.yaml, lists none
// that is gone, and shows the current default of every plain value.
func TestREADMEValuesTable(t *testing.T) {
	readme, err := os.ReadFile(repoPath(t, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Install with Helm\n")
	if !ok {
		t.Fatal(`README.md has no "## Install with Helm" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string]string{} // value path -> default cell
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\| ([^|]*) \\|").FindAllStringSubmatch(section, -1) {
		rows[m[1]] = strings.TrimSpace(m[2])
	}
	if len(rows) < 20 {
		t.Fatalf("the values table has %d rows", len(rows))
	}

	data, err := os.ReadFile(repoPath(t, "charts/thingspace-operator/values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	leaves := map[string]any{}
	all := map[string]bool{}
	flatten("", values, leaves, all)

	var missing []string
	for path, v := range leaves {
		row, covered := "", false
		for p := path; p != ""; p = parent(p) {
			if _, ok := rows[p]; ok {
				row, covered = p, true
				break
			}
		}
		if !covered {
			missing = append(missing, path)
			continue
		}
		// A plain value documented on its own row shows its default first.
		if row == path {
			if want := plain(v); want != "" && !strings.HasPrefix(rows[row], want) {
				t.Errorf("README row %s: default %q, values.yaml has %s", row, rows[row], want)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("values.yaml keys missing from the README's values table: %v", missing)
	}
	for row := range rows {
		if !all[row] {
			t.Errorf("README values table row %s: no such value in values.yaml", row)
		}
	}
}

// flatten records every path (all) and the leaves: non-map values and empty maps.
func flatten(prefix string, v any, leaves map[string]any, all map[string]bool) {
	if prefix != "" {
		all[prefix] = true
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		leaves[prefix] = v
		return
	}
	for k, x := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		flatten(p, x, leaves, all)
	}
}

func parent(path string) string {
	i := strings.LastIndex(path, ".")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// plain is the README's spelling of a scalar default (`8080`, `true`, `""`), else "".
func plain(v any) string {
	switch x := v.(type) {
	case string:
		if x == "" {
			return "`\"\"`"
		}
		return "`" + x + "`"
	case bool, float64, int64, int:
		return fmt.Sprintf("`%v`", x)
	case []any:
		if len(x) == 0 {
			return "`[]`"
		}
	case map[string]any:
		if len(x) == 0 {
			return "`{}`"
		}
	}
	return ""
}
