package main

import (
	"testing"
	"time"
)

// The closing exchange begins at the call that issued what the Secret holds again, when it is known: a
// later call of the same subjects (a keep-alive or a re-login due while the Secret's write was in
// flight) does not push it back, and a call in flight across the death counts from its arrival.
func TestClassifyByTheIssuingCall(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	session := credential{kind: "session", subjects: []string{"m2m:u", "ts:k"}}
	token := callAt{at: at(10.05), done: at(10.06), subject: "ts:k", issued: []string{"bearer-2"}}
	keepAlive := callAt{at: at(11), done: at(11.01), subject: "m2m:u"}
	relogin := callAt{at: at(11), done: at(11.01), subject: "m2m:u", issued: []string{"session-3"}}
	slowToken := callAt{at: at(9.9), done: at(11.1), subject: "ts:k", issued: []string{"bearer-2"}}
	for _, tc := range []struct {
		name        string
		calls       []callAt
		held        []string
		unavoidable time.Duration
	}{
		{name: "the token call issued the bearer; the keep-alive after it changes nothing", calls: []callAt{token, keepAlive},
			held: []string{"session-1", "bearer-2"}, unavoidable: 1450 * time.Millisecond},
		{name: "a re-login whose session the Secret does not hold yet changes nothing", calls: []callAt{token, relogin},
			held: []string{"session-1", "bearer-2"}, unavoidable: 1450 * time.Millisecond},
		{name: "the re-login's session is what the Secret holds: its exchange", calls: []callAt{token, relogin},
			held: []string{"session-3", "bearer-2"}, unavoidable: 500 * time.Millisecond},
		{name: "a token call in flight across the death (upstream latency)", calls: []callAt{slowToken, keepAlive},
			held: []string{"session-1", "bearer-2"}, unavoidable: 1500 * time.Millisecond},
		{name: "nothing issued what the Secret holds: the last call, as before", calls: []callAt{token, keepAlive},
			held: []string{"session-1", "bearer-9"}, unavoidable: 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := deadSpan{after: at(9.75), start: at(10), end: at(11.5)}
			samples := []sample{{at: at(11.5), creds: []credState{{exists: true, live: true, values: tc.held}}}}
			got := classify(d, session, nil, tc.calls, samples)
			if got.unavoidable != tc.unavoidable || got.unavoidable+got.avoidable != d.end.Sub(d.start) {
				t.Errorf("unavoidable %v, avoidable %v; want unavoidable %v of %v", got.unavoidable, got.avoidable, tc.unavoidable, d.end.Sub(d.start))
			}
		})
	}
}
