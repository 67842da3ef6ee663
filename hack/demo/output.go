package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

// Output helpers: the narration's lines, tables as kubectl lays them out, fingerprints instead of
// tokens, and times and counts in words.

// say prints a line stamped with the time of day.
func say(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// step prints a line that stands out: something the operator did.
func step(format string, args ...any) { say("▶ "+format, args...) }

// indent prints detail lines under the last one.
func indent(format string, args ...any) {
	fmt.Printf("%s    %s\n", strings.Repeat(" ", len("15:04:05.000")), fmt.Sprintf(format, args...))
}

// printTable prints rows as `kubectl get <resource>` lays them out.
func (n *narrator) printTable(resource string, header []string, rows [][]string) {
	fmt.Println()
	indent("$ kubectl get %s -n %s", resource, n.ns)
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	for _, row := range append([][]string{header}, rows...) {
		fmt.Fprintln(w, strings.Join(row, "\t"))
	}
	_ = w.Flush()
	for line := range strings.SplitSeq(strings.TrimRight(b.String(), "\n"), "\n") {
		indent("%s", line)
	}
	fmt.Println()
}

// conditionStatus is the status of condition typ, as a printer column shows it.
func conditionStatus(conds []metav1.Condition, typ string) string {
	if c := meta.FindStatusCondition(conds, typ); c != nil {
		return string(c.Status)
	}
	return "<none>"
}

// untilPtr is until for an optional status time.
func untilPtr(t *metav1.Time) string {
	if t == nil {
		return "<none>"
	}
	return until(t.Time)
}

func age(created metav1.Time) string { return duration.HumanDuration(time.Since(created.Time)) }

// fingerprint identifies a token without revealing it: the start of its SHA-256.
func fingerprint(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return "sha256:" + hex.EncodeToString(sum[:])[:12] + "…"
}

func until(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	d := time.Until(t)
	if d < 0 {
		return "expired " + duration.HumanDuration(-d) + " ago"
	}
	return "in " + duration.HumanDuration(d)
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func formatLabels(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func controller(s *corev1.Secret) string {
	if ref := metav1.GetControllerOf(s); ref != nil {
		return ref.Name
	}
	return "(none)"
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
