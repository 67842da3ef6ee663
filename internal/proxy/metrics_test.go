package proxy

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clocktesting "k8s.io/utils/clock/testing"
)

// The credential's age counts from when the source first saw it, on the metrics' clock; the
// expiry is the credential's, in Unix seconds with milliseconds.
func TestCredentialAgeAndExpiry(t *testing.T) {
	now := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakePassiveClock(now)
	m := NewMetrics(clk)
	if v := m.age(); v != 0 {
		t.Errorf("age with no credential %v, want 0", v)
	}
	m.Held(now.Add(-30*time.Second), now.Add(59*time.Minute+500*time.Millisecond))
	clk.SetTime(now.Add(time.Minute))
	if v := m.age(); v != 90 {
		t.Errorf("age %v, want 90", v)
	}
	if v, want := testutil.ToFloat64(m.expiry), float64(now.Add(59*time.Minute).Unix())+0.5; v != want {
		t.Errorf("expiry %v, want %v", v, want)
	}
	if v := testutil.ToFloat64(m.changes); v != 1 {
		t.Errorf("changes %v, want 1", v)
	}
}

func TestCodeClass(t *testing.T) {
	for code, want := range map[int]string{101: "1xx", 200: "2xx", 304: "3xx", 401: "4xx", 499: "4xx", 503: "5xx", 0: "other", 600: "other"} {
		if got := codeClass(code); got != want {
			t.Errorf("codeClass(%d) = %s, want %s", code, got, want)
		}
	}
}
