package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"k8s.io/apimachinery/pkg/util/duration"
)

// maxMessage is how many characters of a failure message the table shows (-o json has all of it).
const maxMessage = 72

// When renders t as relative to now and absolute: "in 42m (2026-12-01T14:23:00Z)", "3m ago (…)", or
// "-" when unset.
func When(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	return Relative(*t, now) + " (" + t.UTC().Format(time.RFC3339) + ")"
}

// Relative renders t as "in 42m", "3m ago" or "now" (within a second), in kubectl's duration style.
func Relative(t, now time.Time) string {
	d := t.Sub(now)
	switch {
	case d > -time.Second && d < time.Second:
		return "now"
	case d > 0:
		return "in " + duration.HumanDuration(d)
	}
	return duration.HumanDuration(-d) + " ago"
}

// ReadyCell is the READY column: the status, with the reason when it is not True.
func ReadyCell(r Row) string {
	switch {
	case r.Ready == "":
		return "-"
	case r.Ready == "True" || r.Reason == "":
		return string(r.Ready)
	}
	return string(r.Ready) + " (" + r.Reason + ")"
}

// FailureCell is the LAST FAILURE column: "Reason: message (3m ago)", the message cut to maxMessage.
func FailureCell(f *Failure, now time.Time) string {
	if f == nil {
		return "-"
	}
	s := f.Reason
	if msg := truncate(clean(f.Message), maxMessage); msg != "" {
		s += ": " + msg
	}
	if f.At != nil {
		s += " (" + Relative(*f.At, now) + ")"
	}
	return s
}

// WriteTable prints rows as the status table; the NAMESPACE column only with allNamespaces.
func WriteTable(w io.Writer, rows []Row, allNamespaces bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	head := []string{"KIND", "NAME", "READY", "EXPIRES", "NEXT RENEWAL", "LAST FAILURE"}
	if allNamespaces {
		head = append([]string{head[0], "NAMESPACE"}, head[1:]...)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		cells := []string{r.Kind, r.Name, ReadyCell(r), When(r.ExpiresAt, now), When(r.NextRenewal, now), FailureCell(r.LastFailure, now)}
		if allNamespaces {
			cells = append([]string{cells[0], r.Namespace}, cells[1:]...)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// WriteJSON prints rows as {"items": [...]}, messages whole (control characters replaced).
func WriteJSON(w io.Writer, rows []Row) error {
	out := make([]Row, len(rows))
	for i, r := range rows {
		r.Message = clean(r.Message)
		if r.LastFailure != nil {
			f := *r.LastFailure
			f.Message = clean(f.Message)
			r.LastFailure = &f
		}
		out[i] = r
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Items []Row `json:"items"`
	}{out})
}

// clean makes text from the API server safe for a terminal and one table line: control characters
// (escape sequences, tabs, newlines) become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}
