package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Issue 14: inside the key's Retry-After the app shows what a throttled call of its own would, and
// waits to the instant the upstream allows.
func TestAppThrottled(t *testing.T) {
	now := t0.Add(10 * time.Minute)
	until := now.Add(2500 * time.Millisecond)
	tok := AppToken{AccessToken: "t1", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	cases := []struct {
		name    string
		held    AppToken
		revoked bool
		ready   bool
		reason  string
		says    string
	}{
		{"valid token", tok, false, true, v1alpha1.ReasonRefreshFailing, "The token is valid until"},
		{"expired token", AppToken{AccessToken: "t1", ExpiresAt: now.Add(-time.Second)}, false, false, v1alpha1.ReasonUpstreamUnavailable, "No valid token"},
		{"no token", AppToken{}, false, false, v1alpha1.ReasonUpstreamUnavailable, "No valid token"},
		{"revoked token", tok, true, false, v1alpha1.ReasonUpstreamUnavailable, "was revoked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := AppThrottled(c.held, c.revoked, until, now)
			if r.Ready != c.ready || r.Reason != c.reason || !strings.Contains(r.Message, c.says) {
				t.Fatalf("%+v", r)
			}
			if r.Delay != 2500*time.Millisecond || !r.At.Equal(now.Add(3*time.Second)) {
				t.Fatalf("delay %v at %v: want to the instant, and the slot rounded up", r.Delay, r.At)
			}
			if !strings.Contains(r.Message, "next try at "+r.At.UTC().Format(time.RFC3339)) || !strings.Contains(r.Message, "Retry-After") {
				t.Fatalf("message %q", r.Message)
			}
		})
	}
}
