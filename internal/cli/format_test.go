package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"
)

var now = time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := now.Add(d); return &t }

func TestWhen(t *testing.T) {
	clk := testingclock.NewFakePassiveClock(now)
	for _, tc := range []struct {
		name string
		t    *time.Time
		want string
	}{
		{"unset", nil, "-"},
		{"future minutes", at(42 * time.Minute), "in 42m (2026-12-01T14:42:00Z)"},
		{"future hours", at(3*time.Hour + 12*time.Minute), "in 3h12m (2026-12-01T17:12:00Z)"},
		{"future seconds", at(45 * time.Second), "in 45s (2026-12-01T14:00:45Z)"},
		{"past", at(-3 * time.Minute), "3m ago (2026-12-01T13:57:00Z)"},
		{"days", at(-50 * time.Hour), "2d2h ago (2026-11-29T12:00:00Z)"},
		{"within a second", at(400 * time.Millisecond), "now (2026-12-01T14:00:00Z)"},
		{"non-UTC input prints UTC", func() *time.Time {
			t := now.Add(time.Hour).In(time.FixedZone("X", 3600))
			return &t
		}(), "in 60m (2026-12-01T15:00:00Z)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := When(tc.t, clk.Now()); got != tc.want {
				t.Errorf("When = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadyAndFailureCells(t *testing.T) {
	for _, tc := range []struct {
		row  Row
		want string
	}{
		{Row{}, "-"},
		{Row{Ready: "True", Reason: "TokenValid"}, "True"},
		{Row{Ready: "True", Reason: "RefreshFailing"}, "True"},
		{Row{Ready: "False", Reason: "CredentialsRejected"}, "False (CredentialsRejected)"},
		{Row{Ready: "Unknown", Reason: "Pending"}, "Unknown (Pending)"},
		{Row{Ready: "False"}, "False"},
	} {
		if got := ReadyCell(tc.row); got != tc.want {
			t.Errorf("ReadyCell(%+v) = %q, want %q", tc.row, got, tc.want)
		}
	}
	long := strings.Repeat("x", 100)
	for _, tc := range []struct {
		f    *Failure
		want string
	}{
		{nil, "-"},
		{&Failure{Reason: "R"}, "R"},
		{&Failure{Reason: "R", Message: "line1\nline2\t\x1b[31mred", At: at(-time.Minute)}, "R: line1 line2  [31mred (60s ago)"},
		{&Failure{Reason: "R", Message: long}, "R: " + strings.Repeat("x", maxMessage-3) + "..."},
	} {
		if got := FailureCell(tc.f, now); got != tc.want {
			t.Errorf("FailureCell(%+v) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	rows := []Row{
		{Kind: "ThingSpaceApp", Namespace: "b", Name: "billing", Ready: "True", Reason: "TokenValid",
			ExpiresAt: at(42 * time.Minute), NextRenewal: at(30 * time.Minute)},
		{Kind: "M2MSession", Namespace: "b", Name: "uws", Ready: "False", Reason: "LoginRejected",
			NextRenewal: nil, LastFailure: &Failure{Reason: "LoginRejected", Message: "refused", At: at(-5 * time.Minute)}},
	}
	var b bytes.Buffer
	if err := WriteTable(&b, rows, false, now); err != nil {
		t.Fatal(err)
	}
	want := `KIND            NAME      READY                   EXPIRES                         NEXT RENEWAL                    LAST FAILURE
ThingSpaceApp   billing   True                    in 42m (2026-12-01T14:42:00Z)   in 30m (2026-12-01T14:30:00Z)   -
M2MSession      uws       False (LoginRejected)   -                               -                               LoginRejected: refused (5m ago)
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteTable(&b, rows[:1], true, now); err != nil {
		t.Fatal(err)
	}
	if first := strings.SplitN(b.String(), "\n", 2)[0]; !strings.HasPrefix(first, "KIND            NAMESPACE   NAME") {
		t.Errorf("-A header = %q", first)
	}
}

func TestWriteJSON(t *testing.T) {
	rows := []Row{{Kind: "CloudAuthorization", Namespace: "a", Name: "photos", Ready: "False", Reason: "AuthorizationPending",
		Message: "open\x1b the link", ExpiresAt: at(time.Hour), observedRefresh: "x"}}
	var b bytes.Buffer
	if err := WriteJSON(&b, rows); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v in %s", err, b.String())
	}
	if len(got.Items) != 1 || got.Items[0]["expiresAt"] != "2026-12-01T15:00:00Z" || got.Items[0]["message"] != "open  the link" {
		t.Errorf("json = %s", b.String())
	}
	if _, ok := got.Items[0]["nextRenewal"]; ok {
		t.Errorf("unset nextRenewal printed: %s", b.String())
	}
}

func TestRequestValue(t *testing.T) {
	n := now.Add(123 * time.Millisecond)
	if got := RequestValue(n, "", ""); got != "2026-12-01T14:00:00Z" {
		t.Errorf("fresh = %q", got)
	}
	if got := RequestValue(n.In(time.FixedZone("X", 7200)), "", ""); got != "2026-12-01T14:00:00Z" {
		t.Errorf("not UTC: %q", got)
	}
	// A second request within the same second must still be a new value.
	for _, cur := range [][2]string{{"2026-12-01T14:00:00Z", ""}, {"", "2026-12-01T14:00:00Z"}} {
		got := RequestValue(n, cur[0], cur[1])
		if got != "2026-12-01T14:00:00.123Z" {
			t.Errorf("RequestValue(%q, %q) = %q", cur[0], cur[1], got)
		}
		if _, err := time.Parse(time.RFC3339, got); err != nil {
			t.Errorf("not RFC 3339: %v", err)
		}
	}
}

func mt(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(d)) }
