package policy

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAppReplacing(t *testing.T) {
	readyTrue := &metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue}
	readyFalse := &metav1.Condition{Type: "Ready", Status: metav1.ConditionFalse}
	for _, c := range []struct {
		name    string
		ready   *metav1.Condition
		expired time.Time
		wait    bool
		next    time.Time
	}{
		{"just expired, the app Ready: wait a second", readyTrue, t0.Add(-2 * time.Second), true, t0.Add(time.Second)},
		{"near the grace's end: wait until it", readyTrue, t0.Add(-AppReplacingGrace + 300*time.Millisecond), true, t0.Add(300 * time.Millisecond)},
		{"past the grace: report", readyTrue, t0.Add(-AppReplacingGrace), false, time.Time{}},
		{"the app reported a failure: report", readyFalse, t0.Add(-2 * time.Second), false, time.Time{}},
		{"the app has no Ready yet: report", nil, t0.Add(-2 * time.Second), false, time.Time{}},
		{"no token at all: report", readyTrue, time.Time{}, false, time.Time{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			next, wait := AppReplacing(c.ready, c.expired, t0)
			if wait != c.wait || !next.Equal(c.next) {
				t.Fatalf("got %v %v, want %v %v", next, wait, c.next, c.wait)
			}
		})
	}
}
