package policy

import (
	"testing"
	"time"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
)

// Issue 8 scenario 14: a logout on deletion is tried while it matters, and is moot once the session has
// idled out (20 minutes after its last use, or after the deletion when no use is recorded).
func TestDecideLogout(t *testing.T) {
	used := func(login, keepAlive time.Duration) v1alpha1.M2MSessionStatus {
		return v1alpha1.M2MSessionStatus{LastLoginTime: mt(t0.Add(-login)), LastKeepAliveTime: mt(t0.Add(-keepAlive))}
	}
	deleted := t0.Add(-time.Minute)
	cases := []struct {
		name   string
		f      LogoutFacts
		action LogoutAction
	}{
		{name: "no session", f: LogoutFacts{Now: t0, Deleted: deleted, Status: used(time.Minute, time.Minute), AppReady: true}, action: LogoutNone},
		{name: "used a minute ago", f: LogoutFacts{Now: t0, Deleted: deleted, Status: used(time.Hour, time.Minute), HasSession: true, AppReady: true}, action: LogoutCall},
		{name: "last keep-alive 19m59s ago", f: LogoutFacts{Now: t0, Deleted: deleted, Status: used(time.Hour, 20*time.Minute-time.Second), HasSession: true, AppReady: true}, action: LogoutCall},
		{name: "idle for 20 minutes", f: LogoutFacts{Now: t0, Deleted: deleted, Status: used(time.Hour, 20*time.Minute), HasSession: true, AppReady: true}, action: LogoutMoot},
		{name: "login is the last use", f: LogoutFacts{Now: t0, Deleted: deleted, Status: v1alpha1.M2MSessionStatus{LastLoginTime: mt(t0.Add(-21 * time.Minute))}, HasSession: true, AppReady: true}, action: LogoutMoot},
		{name: "endpoint not allowed", f: LogoutFacts{Now: t0, Deleted: deleted, Status: used(time.Hour, time.Minute), HasSession: true, AppReady: true, EndpointRefused: "ThingSpaceApp app: endpoint host x:443 is not allowed"}, action: LogoutMoot},
		{name: "no token to log out with", f: LogoutFacts{Now: t0, Deleted: deleted, Status: used(time.Hour, time.Minute), HasSession: true}, action: LogoutMoot},
		{name: "no use recorded, deleted a minute ago", f: LogoutFacts{Now: t0, Deleted: deleted, HasSession: true, AppReady: true}, action: LogoutCall},
		{name: "no use recorded, deleted 20 minutes ago", f: LogoutFacts{Now: t0, Deleted: t0.Add(-20 * time.Minute), HasSession: true, AppReady: true}, action: LogoutMoot},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := DecideLogout(tc.f)
			if d.Action != tc.action || (d.Action == LogoutMoot && d.Reason == "") {
				t.Fatalf("got %+v, want %s", d, tc.action)
			}
		})
	}
}

func TestLogoutRetryNeverOutwaitsTheIdleTimeout(t *testing.T) {
	b := renewal.Backoff{Base: time.Second, Cap: time.Hour, Factor: 2}
	f := LogoutFacts{Now: t0, Deleted: t0, Status: v1alpha1.M2MSessionStatus{LastKeepAliveTime: mt(t0.Add(-5 * time.Minute))}, HasSession: true, AppReady: true}
	if got := LogoutRetry(b, 1, 0, 0, f); !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("first retry at %v", got)
	}
	if got := LogoutRetry(b, 30, 0, 0, f); !got.Equal(t0.Add(15 * time.Minute)) {
		t.Fatalf("a long backoff retries at %v, want the moot time %v", got, t0.Add(15*time.Minute))
	}
	if got := LogoutRetry(b, 1, 0, 20*time.Minute, f); !got.Equal(t0.Add(15 * time.Minute)) {
		t.Fatalf("a long Retry-After retries at %v, want the moot time", got)
	}
}
