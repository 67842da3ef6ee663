package prometheus

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// The dashboard parses, every panel queries the dashboard's data source with expressions that select
// only series the operator or controller-runtime serves, and it shows what issue 12 asks for.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	data, err := os.ReadFile(repoPath(t, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s does not parse: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("title %q uid %q: want both", d.Title, d.UID)
	}
	ids := map[int]bool{}
	var all []string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: data source %q, %d queries; want ${datasource} and at least one", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for _, q := range p.Targets {
			if len(metricNames(q.Expr)) == 0 {
				t.Errorf("panel %q: no metric in %q", p.Title, q.Expr)
			}
			if u := unknownNames(t, q.Expr); len(u) > 0 {
				t.Errorf("panel %q queries metrics nobody exports: %v", p.Title, u)
			}
			all = append(all, q.Expr)
		}
	}
	for _, v := range d.Templating.List {
		q, _ := v.Query.(map[string]any)
		if expr, _ := q["query"].(string); expr != "" {
			if u := unknownNames(t, expr); len(u) > 0 {
				t.Errorf("variable %s queries metrics nobody exports: %v", v.Name, u)
			}
		}
	}
	joined := strings.Join(all, "\n")
	for what, name := range map[string]string{
		"not-ready credentials":               "_ready_status",
		"time to expiry":                      "_expiration_timestamp_seconds",
		"upstream calls by endpoint and code": "thingspace_upstream_requests_total[$__rate_interval]",
		"refreshes":                           `endpoint=~"token|refresh|code_exchange"`,
		"logins":                              "thingspace_m2m_logins_total",
		"reconcile errors":                    "controller_runtime_reconcile_errors_total",
		"UWS login failures":                  "thingspace_m2m_login_consecutive_failures",
		"the Cloud refresh-token keep-alive":  "thingspace_cloud_refresh_token_keepalive_deadline_timestamp_seconds",
	} {
		if !strings.Contains(joined, name) {
			t.Errorf("no panel shows %s (%s)", what, name)
		}
	}
}

// Every panel query is valid PromQL: promtool parses them as recording rules, with Grafana's
// variables replaced by values they take ($__rate_interval a duration, $namespace a regex).
func TestDashboardQueriesParse(t *testing.T) {
	bin := promtool(t)
	data, err := os.ReadFile(repoPath(t, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$namespace", ".*")
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for _, p := range d.Panels {
		for i, q := range p.Targets {
			rules = append(rules, rule{Record: fmt.Sprintf("dashboard:panel%d_%d", p.ID, i), Expr: vars.Replace(q.Expr)})
		}
	}
	out, err := json.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard.rules.json") // JSON is YAML
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := exec.Command(bin, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool refuses a dashboard query: %v\n%s", err, res)
	} else if !strings.Contains(string(res), fmt.Sprintf("SUCCESS: %d rules found", len(rules))) {
		t.Errorf("promtool checked other than the %d queries:\n%s", len(rules), res)
	}
}
