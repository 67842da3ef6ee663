package main

import (
	"testing"
	"time"
)

// classify excuses only what the upstream (or the API server, or the absence of a leader) blocked for
// the whole window in which a refresh could have landed, plus the closing exchange.
func TestClassifyDeadSpan(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	plain := credential{kind: "app", subjects: []string{"ts:k"}}
	cloud := credential{kind: "cloud", subjects: []string{"cloud:c"}, lead: 8 * time.Second}
	ok := func(s float64, subject string) callAt { return callAt{at: at(s), done: at(s + 0.1), subject: subject} }
	for _, tc := range []struct {
		name        string
		cr          credential
		start, end  float64
		blocked     []window
		calls       []callAt
		unavoidable time.Duration
	}{
		{name: "lead 0, nobody asked", cr: plain, start: 10, end: 11, unavoidable: 0},
		{name: "lead 0, the closing exchange", cr: plain, start: 10, end: 11, calls: []callAt{ok(10.5, "ts:k")}, unavoidable: 500 * time.Millisecond},
		{name: "lead 0, an exchange begun before the first dead sample", cr: plain, start: 10, end: 10.25, calls: []callAt{ok(9.9, "ts:k")}, unavoidable: 250 * time.Millisecond},
		{name: "lead 0, another key's call is no excuse", cr: plain, start: 10, end: 11, calls: []callAt{ok(10.5, "ts:other")}, unavoidable: 0},
		{name: "lead 0, a refused call then the exchange", cr: plain, start: 10, end: 15.5,
			calls:       []callAt{{at: at(10), done: at(14), subject: "ts:k", refused: true}, ok(15, "ts:k")},
			unavoidable: 4*time.Second + 500*time.Millisecond},
		{name: "lead 0, refused just before the first dead sample, within its Retry-After", cr: plain, start: 10, end: 12.5,
			calls:       []callAt{{at: at(9.9), done: at(9.9), subject: "ts:k", refused: true, retryAfter: 2 * time.Second}, ok(12, "ts:k")},
			unavoidable: 2*time.Second + 500*time.Millisecond - 100*time.Millisecond},
		{name: "lead 0, no leader", cr: plain, start: 10, end: 17, blocked: []window{{what: "leader", start: at(9), end: at(16)}},
			calls: []callAt{ok(16.5, "ts:k")}, unavoidable: 6*time.Second + 500*time.Millisecond},
		{name: "lead 8s, a call at death is too late", cr: cloud, start: 10, end: 11, calls: []callAt{ok(10.5, "cloud:c")}, unavoidable: 0},
		{name: "lead 8s, blocked for part of the window", cr: cloud, start: 10, end: 11,
			blocked: []window{{what: "upstream", start: at(4), end: at(10.5)}}, calls: []callAt{ok(10.6, "cloud:c")}, unavoidable: 0},
		{name: "lead 8s, blocked for the whole window", cr: cloud, start: 10, end: 13,
			blocked: []window{{what: "upstream", start: at(1), end: at(12)}}, calls: []callAt{ok(12.5, "cloud:c")}, unavoidable: 2*time.Second + 500*time.Millisecond},
		{name: "lead 8s, a Bearer-reject window is no excuse for a Cloud token", cr: cloud, start: 10, end: 11,
			blocked: []window{{what: "m2m", start: at(1), end: at(12)}}, unavoidable: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := deadSpan{after: at(tc.start - 0.25), start: at(tc.start), end: at(tc.end)}
			got := classify(d, tc.cr, merged(tc.blocked, tc.cr.kind), tc.calls, nil)
			if got.unavoidable != tc.unavoidable || got.unavoidable+got.avoidable != d.end.Sub(d.start) {
				t.Errorf("unavoidable %v, avoidable %v; want unavoidable %v of %v", got.unavoidable, got.avoidable, tc.unavoidable, d.end.Sub(d.start))
			}
		})
	}
}
