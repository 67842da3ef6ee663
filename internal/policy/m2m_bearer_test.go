package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
)

// Issue 8 scenario 11: a gateway 401 on the Bearer asks for one app-token refresh per episode and backs
// off, never pulled in by the keep-alive interval.
func TestBearerRejected(t *testing.T) {
	b := renewal.Backoff{Base: time.Second, Cap: time.Minute, Factor: 2}
	cases := []struct {
		name     string
		st       v1alpha1.M2MSessionStatus
		refresh  bool
		failures int32
		at       time.Time
	}{
		{name: "first 401 after a healthy session", st: v1alpha1.M2MSessionStatus{Conditions: ready(v1alpha1.ReasonSessionValid, 1)},
			refresh: true, failures: 1, at: t0.Add(time.Second)},
		{name: "first 401 after transient failures", st: v1alpha1.M2MSessionStatus{Conditions: ready(v1alpha1.ReasonUpstreamUnavailable, 1), FailedAttempts: 2},
			refresh: true, failures: 3, at: t0.Add(4 * time.Second)},
		{name: "no condition yet", refresh: true, failures: 1, at: t0.Add(time.Second)},
		{name: "second 401 of the episode: no second refresh", st: v1alpha1.M2MSessionStatus{Conditions: ready(v1alpha1.ReasonBearerRejected, 1), FailedAttempts: 1},
			failures: 2, at: t0.Add(2 * time.Second)},
		{name: "the backoff reaches its cap", st: v1alpha1.M2MSessionStatus{Conditions: ready(v1alpha1.ReasonBearerRejected, 1), FailedAttempts: 20},
			failures: 21, at: t0.Add(time.Minute)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := BearerRejected(b, tc.st, 0, t0)
			if p.RefreshApp != tc.refresh || p.Failures != tc.failures || !p.At.Equal(tc.at) {
				t.Fatalf("got %+v, want refresh %v failures %d at %v", p, tc.refresh, tc.failures, tc.at)
			}
			if !strings.Contains(p.Message, "401") || !strings.Contains(p.Message, tc.at.UTC().Format(time.RFC3339)) {
				t.Fatalf("message %q", p.Message)
			}
		})
	}
	// Sub-second slots round up: the status holds whole seconds, and a pass must never retry early.
	p := BearerRejected(renewal.Backoff{Base: 300 * time.Millisecond, Cap: time.Second, Factor: 2}, v1alpha1.M2MSessionStatus{}, 0, t0)
	if !p.At.Equal(t0.Add(time.Second)) {
		t.Fatalf("at %v, want rounded up to the second", p.At)
	}
}
