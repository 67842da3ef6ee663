package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/test/harness"
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
		{name: "lead 0, an answer held then delivered: the hold, then the exchange from its delivery", cr: plain, start: 10, end: 14,
			calls:       []callAt{{at: at(10.1), done: at(13), subject: "ts:k", refused: true, delivered: true}},
			unavoidable: 3*time.Second + 900*time.Millisecond},
		{name: "lead 0, an answer held past the timeout is no exchange", cr: plain, start: 10, end: 14,
			calls:       []callAt{{at: at(10.1), done: at(13), subject: "ts:k", refused: true}},
			unavoidable: 2*time.Second + 900*time.Millisecond},
		{name: "lead 0, no leader", cr: plain, start: 10, end: 17, blocked: []window{{what: "leader", start: at(9), end: at(16)}},
			calls: []callAt{ok(16.5, "ts:k")}, unavoidable: 6*time.Second + 500*time.Millisecond},
		{name: "lead 0, the leader killed a moment after the death", cr: plain, start: 10, end: 18.5,
			blocked: []window{{what: "leader", start: at(10.3), end: at(18)}}, calls: []callAt{ok(18, "ts:k")},
			unavoidable: 7*time.Second + 700*time.Millisecond + 500*time.Millisecond},
		{name: "lead 0, a late timer, then a short API outage: only the outage and the exchange", cr: plain, start: 10, end: 20.5,
			blocked: []window{{what: "api", start: at(13), end: at(14)}}, calls: []callAt{ok(20, "ts:k")},
			unavoidable: time.Second + 500*time.Millisecond},
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

// A lost grant or password is physics only when the applied call's answer reached no manager: a drop,
// a hold the manager timed out on, a hold during which a manager was SIGKILLed. Answered, it was in
// the operator's hands; refused unrotated, it is the upstream's.
func TestGrantLoss(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	call := func(s float64, status int, chaos, used string) harness.LedgerCall {
		return harness.LedgerCall{At: at(s), Done: at(s).Add(upstreamTimeout), Route: harness.RouteCloudToken, Subject: "cloud:c", Status: status, Chaos: chaos, Used: used}
	}
	abandoned := call(1, 499, "hold", "rt")
	abandoned.Done = at(2)
	for _, tc := range []struct {
		name  string
		calls []harness.LedgerCall
		kills []time.Time
		want  lossCause
	}{
		{name: "answered 200, lost after", calls: []harness.LedgerCall{call(1, 200, "", "rt")}, want: lossOperator},
		{name: "held, answered 200 after the hold", calls: []harness.LedgerCall{call(1, 200, "hold", "rt")}, want: lossOperator},
		{name: "dropped after it was applied", calls: []harness.LedgerCall{call(1, 0, "drop", "rt")}, want: lossReset},
		{name: "held, the manager gave up", calls: []harness.LedgerCall{call(1, 499, "hold", "rt")}, want: lossTimedOut},
		{name: "held, a manager SIGKILLed meanwhile", calls: []harness.LedgerCall{call(1, 499, "hold", "rt")}, kills: []time.Time{at(2)}, want: lossKilled},
		{name: "held, given up before the timeout with no SIGKILL (a SIGTERM, a lost lease)", calls: []harness.LedgerCall{abandoned}, want: lossAbandoned},
		{name: "a kill before the call explains nothing", calls: []harness.LedgerCall{call(1, 499, "hold", "rt")}, kills: []time.Time{at(0.5)}, want: lossTimedOut},
		{name: "dropped, then reused and refused: the drop lost it", calls: []harness.LedgerCall{call(1, 0, "drop", "rt"), call(5, 400, "", "rt")}, want: lossReset},
		{name: "answered, then reused and refused: the operator's", calls: []harness.LedgerCall{call(1, 200, "", "rt"), call(5, 400, "", "rt")}, want: lossOperator},
		{name: "a fault changes nothing, the answer after it counts", calls: []harness.LedgerCall{call(1, 503, "fault", "rt"), call(5, 200, "", "rt")}, want: lossOperator},
		{name: "faulted only: never rotated, the operator's", calls: []harness.LedgerCall{call(1, 503, "fault", "rt")}, want: lossOperator},
		{name: "refused though never rotated: the upstream's", calls: []harness.LedgerCall{call(1, 401, "", "rt")}, want: lossRefused},
		{name: "another token's call says nothing", calls: []harness.LedgerCall{call(1, 0, "drop", "other")}, want: lossOperator},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, why := grantLoss(harness.Ledger{Calls: tc.calls}, "rt", tc.kills)
			if got != tc.want {
				t.Errorf("cause %v (%s), want %v", got, why, tc.want)
			}
		})
	}
}

// A reset's password is lost by physics only when the reset's answer reached no manager.
func TestPasswordLoss(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	reset := harness.LedgerReset{At: t0.Add(time.Second), User: "u", Password: "new"}
	for _, tc := range []struct {
		name   string
		status int
		chaos  string
		done   time.Duration // 0: the manager's timeout
		kills  []time.Time
		want   lossCause
	}{
		{name: "answered", status: 200, want: lossOperator},
		{name: "dropped", status: 0, chaos: "drop", want: lossReset},
		{name: "held past the timeout", status: 499, chaos: "hold", want: lossTimedOut},
		{name: "held, given up early without a SIGKILL", status: 499, chaos: "hold", done: time.Second, want: lossAbandoned},
		{name: "held, SIGKILLed", status: 499, chaos: "hold", kills: []time.Time{t0.Add(2 * time.Second)}, want: lossKilled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := tc.done
			if done == 0 {
				done = upstreamTimeout
			}
			led := harness.Ledger{Resets: []harness.LedgerReset{reset}, Calls: []harness.LedgerCall{{
				At: t0, Done: t0.Add(done), Route: harness.RouteM2MReset, Subject: "m2m:u", Status: tc.status, Chaos: tc.chaos}}}
			if got := passwordLoss(led, reset, tc.kills); got != tc.want {
				t.Errorf("cause %v, want %v", got, tc.want)
			}
		})
	}
	if got := passwordLoss(harness.Ledger{Resets: []harness.LedgerReset{reset}}, reset, nil); got != lossOperator {
		t.Errorf("a reset with no call: cause %v, want the operator's", got)
	}
}

// Calls beyond the minimum: answered calls whose credential no Secret needed; refused and lost calls
// apart.
func TestMinimums(t *testing.T) {
	tok := func(status int, chaos string, issued ...string) harness.LedgerCall {
		return harness.LedgerCall{Route: harness.RouteToken, Subject: "ts:k", Status: status, Chaos: chaos, Issued: issued}
	}
	led := harness.Ledger{Calls: []harness.LedgerCall{
		tok(200, "", "t1"),     // needed
		tok(200, "", "t1"),     // the same token again: beyond
		tok(503, "fault"),      // refused
		tok(0, "drop", "t2"),   // applied, lost
		tok(200, "", "t3"),     // needed
		tok(200, "", "t4"),     // never held by a Secret: beyond
		tok(200, "hold", "t5"), // held, delivered, held: needed
		tok(499, "", ""),       // latency, the client gave up first: refused
		{Route: harness.RouteM2MLogin, Status: 200, Issued: []string{"s1"}},
	}}
	held := map[string]bool{"t1": true, "t2": true, "t3": true, "t5": true, "s1": true}
	got := map[string]string{}
	for _, m := range minimums(led, held) {
		got[m.name] = m.value
	}
	want := map[string]string{
		"calls beyond the minimum, ThingSpace token": "2 (5 answered, 3 needed; 2 refused, 1 lost)",
		"calls beyond the minimum, M2M login":        "0 (1 answered, 1 needed; 0 refused, 0 lost)",
	}
	if len(got) != len(want) {
		t.Errorf("families %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// After a reset whose answer was lost, logins until one succeeds probe the password (the old one fails
// if the reset took effect): they are not calls for the still-valid session. Afterwards they are.
func TestStillValidLoginsAfterALostReset(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	p := &population{creds: []credential{
		{kind: "app", owner: "a", keys: []string{"k"}, standby: true},
		{kind: "session", owner: "s", app: "a", user: "u"},
	}}
	var samples []sample
	for i := range 40 {
		samples = append(samples, sample{at: at(float64(i) / 4), creds: []credState{
			{exists: true, live: true, values: []string{"app"}},
			{exists: true, live: true, values: []string{"sess", "app"}},
		}})
	}
	login := func(s float64, status int) harness.LedgerCall {
		return harness.LedgerCall{At: at(s), Done: at(s), Route: harness.RouteM2MLogin, Subject: "m2m:u", Status: status}
	}
	for _, tc := range []struct {
		name  string
		reset harness.LedgerCall
		want  int
	}{
		{name: "reset answered: every login while the session is live is needless",
			reset: harness.LedgerCall{At: at(1), Done: at(1), Route: harness.RouteM2MReset, Subject: "m2m:u", Status: 200}, want: 3},
		{name: "reset dropped: the logins until one succeeds are probes",
			reset: harness.LedgerCall{At: at(1), Done: at(1), Route: harness.RouteM2MReset, Subject: "m2m:u", Chaos: "drop"}, want: 1},
		{name: "reset held past the timeout: the same",
			reset: harness.LedgerCall{At: at(1), Done: at(5), Route: harness.RouteM2MReset, Subject: "m2m:u", Status: 499, Chaos: "hold"}, want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			led := harness.Ledger{Calls: []harness.LedgerCall{tc.reset, login(2, 400), login(3, 200), login(4, 200)}}
			if got := stillValidCalls(p, samples, led, nil); len(got) != tc.want {
				t.Errorf("%d needless calls %v, want %d", len(got), got, tc.want)
			}
		})
	}
}

// A reset's password reached the operator when a Secret was seen with it or a later call presented it.
func TestPasswordReached(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	r := harness.LedgerReset{At: t0, User: "u", Password: "p1"}
	later := func(used string, d time.Duration) harness.LedgerCall {
		return harness.LedgerCall{At: t0.Add(d), Route: harness.RouteM2MReset, Subject: "m2m:u", Status: 200, Used: used}
	}
	for _, tc := range []struct {
		name  string
		seen  map[string]bool
		calls []harness.LedgerCall
		want  bool
	}{
		{name: "seen in the Secret", seen: map[string]bool{"p1": true}, want: true},
		{name: "presented by a later reset", calls: []harness.LedgerCall{later("p1", time.Second)}, want: true},
		{name: "another password presented", calls: []harness.LedgerCall{later("p0", time.Second)}, want: false},
		{name: "presented before the reset: not this one", calls: []harness.LedgerCall{later("p1", -time.Second)}, want: false},
		{name: "never seen nor presented", want: false},
	} {
		if got := passwordReached(harness.Ledger{Calls: tc.calls}, r, tc.seen); got != tc.want {
			t.Errorf("%s: reached %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The sampling after the faults waits for a reset's password until it reached the operator or is lost
// by physics: seed 1 counted lost a password answered 1.6 s before the faults ended, sampled for 2.1 s.
func TestUnsettledResets(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	r := harness.LedgerReset{At: t0.Add(time.Millisecond), User: "u", Password: "p1"}
	reset := func(status int, chaos string) harness.LedgerCall {
		return harness.LedgerCall{At: t0, Done: t0.Add(10 * time.Millisecond), Route: harness.RouteM2MReset, Subject: "m2m:u", Status: status, Chaos: chaos}
	}
	for _, tc := range []struct {
		name  string
		calls []harness.LedgerCall
		seen  map[string]map[string]bool
		want  int
	}{
		{name: "answered, not in the Secret yet: on its way", calls: []harness.LedgerCall{reset(200, "")}, want: 1},
		{name: "answered, seen in the Secret", calls: []harness.LedgerCall{reset(200, "")}, seen: map[string]map[string]bool{"u": {"p1": true}}},
		{name: "another user's Secret says nothing", calls: []harness.LedgerCall{reset(200, "")}, seen: map[string]map[string]bool{"v": {"p1": true}}, want: 1},
		{name: "answered, presented by a later login", calls: []harness.LedgerCall{reset(200, ""),
			{At: t0.Add(time.Second), Route: harness.RouteM2MLogin, Subject: "m2m:u", Status: 200, Used: "p1"}}},
		{name: "dropped: lost by physics, nothing to wait for", calls: []harness.LedgerCall{reset(0, "drop")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			led := harness.Ledger{Calls: tc.calls, Resets: []harness.LedgerReset{r}}
			if got := unsettledResets(led, tc.seen, nil); len(got) != tc.want {
				t.Errorf("%d unsettled %v, want %d", len(got), got, tc.want)
			}
		})
	}
}

// A grant is lost when a sample saw its object not Authorized, or when the last sample found no live
// refresh token in its Secret; a dead reading mid-run (a refresh's answer on its way to the Secret) is
// not, and nothing is asked after sampling (the managers keep refreshing while the verdict is drawn).
func TestLostGrants(t *testing.T) {
	clouds := []string{"cloud-a", "cloud-b"}
	at := func(unauthorized []string, grants ...bool) sample {
		return sample{unauthorized: unauthorized, grants: grants}
	}
	for _, tc := range []struct {
		name    string
		samples []sample
		want    []string
	}{
		{name: "held throughout", samples: []sample{at(nil, true, true), at(nil, true, true)}},
		{name: "a refresh's answer on its way mid-run", samples: []sample{at(nil, true, false), at(nil, true, true)}},
		{name: "seen not Authorized once", samples: []sample{at(nil, true, true), at([]string{"cloud-a"}, true, true), at(nil, true, true)},
			want: []string{"cloud-a"}},
		{name: "no live refresh token at the last sample", samples: []sample{at(nil, true, true), at(nil, true, false)}, want: []string{"cloud-b"}},
		{name: "the last sample could not ask", samples: []sample{at(nil, true, true), at(nil)}, want: []string{"cloud-a", "cloud-b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := lostGrants(clouds, tc.samples)
			var names []string
			for _, ca := range clouds {
				if got[ca] {
					names = append(names, ca)
				}
			}
			if fmt.Sprint(names) != fmt.Sprint(tc.want) {
				t.Errorf("lost %v, want %v", names, tc.want)
			}
		})
	}
}

// The end of a run samples on while a grant's Secret holds a dead refresh token (grantsLive).
func TestGrantsLive(t *testing.T) {
	smp := &sampler{p: &population{clouds: []string{"cloud-a", "cloud-b"}}}
	for _, tc := range []struct {
		name   string
		grants []bool
		want   bool
	}{
		{"both live", []bool{true, true}, true},
		{"one dead", []bool{true, false}, false},
		{"not asked", nil, false},
	} {
		smp.samples = []sample{{grants: tc.grants}}
		if got := grantsLive(smp); got != tc.want {
			t.Errorf("%s: grantsLive %v, want %v", tc.name, got, tc.want)
		}
	}
}
