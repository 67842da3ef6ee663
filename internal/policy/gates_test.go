package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/upstream"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func readyAt(gen int64) []metav1.Condition {
	return []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "X", ObservedGeneration: gen}}
}

func TestCredentialsStillRejected(t *testing.T) {
	cases := []struct {
		name            string
		rejected, creds string
		conds           []metav1.Condition
		gen             int64
		want            bool
	}{
		{"nothing rejected", "", "7", readyAt(1), 1, false},
		{"same Secret, same generation", "7", "7", readyAt(1), 1, true},
		{"Secret changed", "7", "8", readyAt(1), 1, false},
		{"spec changed", "7", "7", readyAt(1), 2, false},
		{"no condition yet", "7", "7", nil, 1, false},
	}
	for _, c := range cases {
		if got := CredentialsStillRejected(c.rejected, c.creds, c.conds, c.gen); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestRefreshRequested(t *testing.T) {
	a := map[string]string{v1alpha1.RefreshRequestedAnnotation: "v2"}
	if ok, v := RefreshRequested(a, "v1"); !ok || v != "v2" {
		t.Errorf("new value: got %v %q", ok, v)
	}
	if ok, _ := RefreshRequested(a, "v2"); ok {
		t.Error("a value already acted on counted again")
	}
	if ok, _ := RefreshRequested(nil, ""); ok {
		t.Error("no annotation counted as a request")
	}
}

func TestRetrySlot(t *testing.T) {
	later := metav1.NewTime(t0.Add(time.Minute))
	if at, ok := RetrySlot(1, &later, t0); !ok || !at.Equal(later.Time) {
		t.Errorf("slot ahead: got %v %v", at, ok)
	}
	if _, ok := RetrySlot(1, &later, t0.Add(time.Minute)); ok {
		t.Error("a slot that has come still holds")
	}
	if _, ok := RetrySlot(0, &later, t0); ok {
		t.Error("a slot without a failure holds")
	}
	if _, ok := RetrySlot(3, nil, t0); ok {
		t.Error("a missing slot holds")
	}
}

func TestRecordFailure(t *testing.T) {
	var rs v1alpha1.RefreshStatus
	RecordFailure(&rs, t0)
	if n := RecordFailure(&rs, t0.Add(1500*time.Millisecond)); n != 2 || rs.FailedRefreshAttempts != 2 {
		t.Fatalf("count %d / %d", n, rs.FailedRefreshAttempts)
	}
	if !rs.LastFailureTime.Time.Equal(t0.Add(time.Second)) {
		t.Errorf("last failure %v, want whole seconds", rs.LastFailureTime)
	}
}

func TestPlanRetry(t *testing.T) {
	b := renewal.Backoff{Base: time.Second, Cap: time.Minute, Factor: 2, Jitter: 0}
	busy := upstream.StatusError("thingspace", "token", 503, "", upstream.Transient, 7*time.Second)
	cases := []struct {
		name       string
		failures   int32
		err        error
		held       time.Time
		now        time.Time
		wantAt     time.Time
		wantReady  bool
		wantReason string
	}{
		{"first failure, no token", 1, errors.New("boom"), time.Time{}, t0, t0.Add(time.Second), false, v1alpha1.ReasonUpstreamUnavailable},
		{"Retry-After wins", 1, busy, time.Time{}, t0, t0.Add(7 * time.Second), false, v1alpha1.ReasonUpstreamUnavailable},
		{"valid token: pulled in to half its remaining life", 10, errors.New("boom"), t0.Add(20 * time.Second), t0, t0.Add(10 * time.Second), true, v1alpha1.ReasonRefreshFailing},
		{"rounded up to the second", 1, errors.New("boom"), time.Time{}, t0.Add(300 * time.Millisecond), t0.Add(2 * time.Second), false, v1alpha1.ReasonUpstreamUnavailable},
	}
	for _, c := range cases {
		p := PlanRetry(b, c.failures, 0, c.err, c.held, c.now)
		if !p.At.Equal(c.wantAt) || p.Delay != c.wantAt.Sub(c.now) || p.Ready != c.wantReady || p.Reason != c.wantReason {
			t.Errorf("%s: got at %v delay %v ready %v reason %s", c.name, p.At, p.Delay, p.Ready, p.Reason)
		}
		if !strings.Contains(p.Message, "next try at") {
			t.Errorf("%s: message %q names no retry time", c.name, p.Message)
		}
	}
}
