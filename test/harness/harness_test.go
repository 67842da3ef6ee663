package harness

import (
	"encoding/base64"
	"testing"
)

func TestSensitiveScan(t *testing.T) {
	var s Sensitive
	s.AddCredentials("k1", "s3cr3t-value")
	s.Add("token", "0f8b2c1e-aaaa-4bbb-8ccc-123456789abc")
	basic := base64.StdEncoding.EncodeToString([]byte("k1:s3cr3t-value"))
	for _, tc := range []struct {
		text string
		want int
	}{
		{`{"msg":"Token written","secret":"ns/t","expiresAt":"2026-01-01T00:00:00Z"}`, 0},
		{`token_type "Bearer" in Secret`, 0},
		{`error: secret was s3cr3t-value`, 1},
		{`got 0f8b2c1e-aaaa-4bbb-8ccc-123456789abc back`, 1},
		{`header ` + basic, 1},
		{`Authorization: Basic ` + basic, 3},               // the value, a Basic header, an Authorization header
		{`"authorization":"x"`, 1},                         // header shape alone
		{`Bearer 0f8b2c1e-aaaa-4bbb-8ccc-123456789abc`, 2}, // the token and a Bearer header
		{`Basic realm`, 0},
	} {
		if got := s.Scan("text", tc.text); len(got) != tc.want {
			t.Errorf("Scan(%q) = %v, want %d findings", tc.text, got, tc.want)
		}
	}
}

func TestMetricValue(t *testing.T) {
	const text = `# HELP thingspace_app_ready 1 when ready
# TYPE thingspace_app_ready gauge
thingspace_app_ready{name="a",namespace="ns1"} 1
thingspace_app_ready{name="b",namespace="ns1"} 0
thingspace_app_ready_other{name="c",namespace="ns1"} 7
up 1
`
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
		found  bool
	}{
		{"thingspace_app_ready", map[string]string{"name": "a", "namespace": "ns1"}, 1, true},
		{"thingspace_app_ready", map[string]string{"name": "b"}, 0, true},
		{"thingspace_app_ready", map[string]string{"name": "c"}, 0, false},
		{"up", nil, 1, true},
		{"down", nil, 0, false},
	} {
		got, ok := MetricValue(text, tc.name, tc.labels)
		if got != tc.want || ok != tc.found {
			t.Errorf("MetricValue(%s, %v) = %v, %v; want %v, %v", tc.name, tc.labels, got, ok, tc.want, tc.found)
		}
	}
}
