package controller

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
)

// A wake planned by a pass counts from its decision, not from the end of the status write after it
// (issue 14: a dead token's retry came that write's duration late); it never becomes "no requeue".
func TestSinceDecided(t *testing.T) {
	decided := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		write   time.Duration
		planned time.Duration
		want    time.Duration
	}{
		{"a fast write", 0, time.Second, time.Second},
		{"a 300 ms write", 300 * time.Millisecond, time.Second, 700 * time.Millisecond},
		{"a write longer than the wait", 2 * time.Second, 100 * time.Millisecond, time.Millisecond},
		{"no requeue stays none", time.Second, 0, 0},
	}
	for _, c := range cases {
		clk := clocktesting.NewFakeClock(decided)
		d := Deps{Clock: clk}
		clk.Step(c.write)
		if got := d.sinceDecided(ctrl.Result{RequeueAfter: c.planned}, decided).RequeueAfter; got != c.want {
			t.Errorf("%s: RequeueAfter %v, want %v", c.name, got, c.want)
		}
	}
}
