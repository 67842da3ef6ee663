package prometheus

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/credops/thingspace-operator/internal/metrics"
)

const (
	rulesFile     = "config/prometheus/thingspace-operator.rules.yaml"
	rulesTest     = "test/prometheus/testdata/thingspace-operator.rules.test.yaml"
	prometheusCR  = "config/prometheus/prometheus_rule.yaml"
	dashboardFile = "config/grafana/thingspace-operator.json"
)

// repoPath is a path under the repository root.
func repoPath(t testing.TB, elem ...string) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Join(append([]string{filepath.Dir(file), "..", ".."}, elem...)...)
}

// promtool is $PROMTOOL, else <repo>/bin/promtool. Missing: a failure when PROMTOOL names it (`make
// test` does) or under CI, a skip otherwise.
func promtool(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("PROMTOOL")
	if bin == "" {
		bin = repoPath(t, "bin", "promtool")
	}
	if _, err := exec.LookPath(bin); err != nil {
		if os.Getenv("CI") != "" || os.Getenv("PROMTOOL") != "" {
			t.Fatalf("no promtool at %s (PROMTOOL=%q): run `make promtool`", bin, os.Getenv("PROMTOOL"))
		}
		t.Skipf("no promtool at %s: run `make promtool`, or these tests through `make test`", bin)
	}
	return bin
}

var (
	namesOnce sync.Once
	names     map[string]bool
)

// exportedNames is every metric name the operator's registry serves once each kind of series exists:
// internal/metrics' (each setter called once) and controller-runtime's (a controller started), plus
// "up", which Prometheus adds per scrape.
func exportedNames(t testing.TB) map[string]bool {
	t.Helper()
	namesOnce.Do(func() {
		now := time.Now()
		st := metrics.State{Ready: metav1.ConditionTrue, Expires: now.Add(time.Hour), Renewal: now.Add(50 * time.Minute)}
		metrics.SetApp("names", "a", st)
		metrics.SetSession("names", "s", metrics.Session{State: st, LastKeepAlive: now})
		metrics.TrackLogins("names", "s", "endpoint\x00user", func() int { return 0 })
		metrics.SetCloud("names", "c", metrics.Cloud{State: st, Authorized: true, RefreshTokenExpires: now, KeepAliveDeadline: now})
		metrics.Observer("thingspace")("token", "200")
		metrics.M2MLogins.WithLabelValues("success").Inc()
		metrics.M2MKeepAlives.WithLabelValues("success").Inc()

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c, err := controller.NewUnmanaged("names-probe", controller.Options{
			Reconciler: reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) { return reconcile.Result{}, nil }),
		})
		if err != nil {
			t.Fatalf("controller: %v", err)
		}
		go func() { _ = c.Start(ctx) }()
		names = map[string]bool{"up": true}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			fams, err := ctrlmetrics.Registry.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fams {
				names[f.GetName()] = true
			}
			if names["controller_runtime_reconcile_errors_total"] {
				break
			}
		}
		metrics.ForgetApp("names", "a")
		metrics.ForgetSession("names", "s")
		metrics.ForgetCloud("names", "c")
	})
	if !names["controller_runtime_reconcile_errors_total"] || !names["thingspace_app_ready_status"] {
		t.Fatalf("the registry lacks controller-runtime's or the operator's series: %v", names)
	}
	return names
}

var (
	strLit   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	matchers = regexp.MustCompile(`\{[^}]*\}`)
	ranges   = regexp.MustCompile(`\[[^\]]*\]`)
	grouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	ident    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	keywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "group_left": true, "group_right": true, "on": true, "ignoring": true, "by": true, "without": true}
)

// metricNames is the metric names a PromQL expression selects: identifiers outside label matchers,
// strings, ranges and grouping clauses that are neither a keyword nor a function or aggregation called.
func metricNames(expr string) []string {
	e := strLit.ReplaceAllString(expr, `""`)
	e = matchers.ReplaceAllString(e, "")
	e = ranges.ReplaceAllString(e, "")
	e = grouping.ReplaceAllString(e, "")
	var out []string
	for _, loc := range ident.FindAllStringIndex(e, -1) {
		name := e[loc[0]:loc[1]]
		if keywords[name] || (loc[0] > 0 && (e[loc[0]-1] >= '0' && e[loc[0]-1] <= '9' || e[loc[0]-1] == '.')) {
			continue
		}
		if rest := strings.TrimLeft(e[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function or aggregation
		}
		out = append(out, name)
	}
	return out
}

// unknownNames is the names in expr that the registry does not serve.
func unknownNames(t testing.TB, expr string) []string {
	known := exportedNames(t)
	var out []string
	for _, n := range metricNames(expr) {
		if !known[n] {
			out = append(out, n)
		}
	}
	return out
}
