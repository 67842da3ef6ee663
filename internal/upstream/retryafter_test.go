package upstream

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{in: "120", want: 120 * time.Second, wantOK: true},
		{in: " 30 ", want: 30 * time.Second, wantOK: true},
		{in: "0", want: 0, wantOK: true},
		{in: now.Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second, wantOK: true},
		{in: now.Add(2 * time.Hour).Format(time.RFC850), want: 2 * time.Hour, wantOK: true},
		{in: now.Add(5 * time.Minute).Format(time.ANSIC), want: 5 * time.Minute, wantOK: true},
		{in: now.Add(-time.Minute).Format(http.TimeFormat), want: 0, wantOK: true},
		{in: ""},
		{in: "   "},
		{in: "-5"},
		{in: "+5"},
		{in: "1.5"},
		{in: "soon"},
		{in: "99999999999999999999"},
		{in: "9223372036854775807"},
		{in: "2026-03-01T12:01:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := ParseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseRetryAfter(%q) = (%v, %v), want (%v, %v)", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
