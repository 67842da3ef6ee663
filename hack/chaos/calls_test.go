package main

import (
	"testing"
	"time"

	"github.com/credops/thingspace-operator/test/harness"
)

// A login right after the session's app handed over (its Secret changed just before the login, after
// the last sample) is the handover's login, not a call for a still-valid credential; a login while the
// app's token stayed the one the session holds is.
func TestNeedlessLoginReadsTheAppAfterTheLogin(t *testing.T) {
	p := &population{creds: []credential{
		{kind: "app", owner: "standby", standby: true},
		{kind: "session", owner: "rotate", app: "standby", user: "u"},
	}}
	state := func(appTok, sessBearer string) *sample {
		return &sample{creds: []credState{
			{exists: true, live: true, values: []string{appTok}},
			{exists: true, live: true, values: []string{"sess", sessBearer}},
		}}
	}
	before := state("old", "old")
	cases := []struct {
		name  string
		after *sample
		want  bool
	}{
		{"app handed over just before the login", state("new", "old"), false},
		{"app unchanged", state("old", "old"), true},
		{"no sample after the login", nil, true},
	}
	for _, c := range cases {
		if got := needlessLogin(p, before, c.after, "u", func([]string) []string { return nil }); got != c.want {
			t.Errorf("%s: needless = %v, want %v", c.name, got, c.want)
		}
	}
}

// The session follows its app's new token before the app's Secret shows it (internal/announce): a
// login a moment after a token call for the app's key answered a token other than the session's bearer
// is for that token even though every sample still shows the old pair (seed 66 at 2c7801f); a token
// call that answered the bearer again excuses nothing.
func TestNeedlessLoginFollowsTheLedgersNewToken(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	p := &population{creds: []credential{
		{kind: "app", owner: "standby", keys: []string{"k-prim", "k-stby"}, standby: true},
		{kind: "session", owner: "rotate", app: "standby", user: "u"},
	}}
	old := &sample{creds: []credState{
		{exists: true, live: true, values: []string{"old"}},
		{exists: true, live: true, values: []string{"sess", "old"}},
	}}
	login := t0.Add(10 * time.Second)
	call := func(key, issued string, done time.Duration) harness.LedgerCall {
		return harness.LedgerCall{At: login.Add(done - 50*time.Millisecond), Done: login.Add(done), Route: harness.RouteToken,
			Subject: "ts:" + key, Status: 200, Issued: []string{issued}}
	}
	cases := []struct {
		name string
		call harness.LedgerCall
		want bool
	}{
		{"the standby key's new token 1 ms before", call("k-stby", "new", -time.Millisecond), false},
		{"the same token again", call("k-prim", "old", -time.Millisecond), true},
		{"a new token of another key", call("k-other", "new", -time.Millisecond), true},
		{"a new token answered after the login", call("k-stby", "new", time.Millisecond), true},
		{"a new token long before", call("k-stby", "new", -5*time.Second), true},
	}
	for _, c := range cases {
		led := harness.Ledger{Calls: []harness.LedgerCall{c.call}}
		got := needlessLogin(p, old, old, "u", func(keys []string) []string { return tokensIssuedBefore(led, keys, login, handoverSlack) })
		if got != c.want {
			t.Errorf("%s: needless = %v, want %v", c.name, got, c.want)
		}
	}
}

// A sample is what the Secrets held when its List was served, somewhere between its time (when the List
// was sent) and when the List returned. A handover login comes within milliseconds of the app's new
// token; on a loaded machine a List sent just before the login can be served after the login's Secret
// write, and then shows the login's own session with the app's new token, both live: read as the state
// before the login, the handover looks like a login for a still-valid session (TestChaosShort, seed 1).
// What the Secrets held before a call is the last sample read entirely before it; a session that held
// the app's current token then is still a needless login.
func TestStillValidLoginsReadTheSampleServedBeforeTheLogin(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	p := &population{creds: []credential{
		{kind: "app", owner: "standby", keys: []string{"k"}, standby: true},
		{kind: "session", owner: "rotate", app: "standby", user: "u"},
	}}
	held := func(sent, read int, appTok, sess, bearer string) sample {
		return sample{at: at(sent), read: at(read), creds: []credState{
			{exists: true, live: true, values: []string{appTok}},
			{exists: true, live: true, values: []string{sess, bearer}},
		}}
	}
	login := harness.LedgerCall{At: at(300), Done: at(310), Route: harness.RouteM2MLogin, Subject: "m2m:u", Status: 200, Issued: []string{"s2"}}
	for _, tc := range []struct {
		name    string
		samples []sample
		want    int
	}{
		{name: "handover: the sample sent before the login was served after its Secret write",
			samples: []sample{
				held(0, 40, "t2", "s1", "t1"),    // the app's new token; the session still on the old pair
				held(250, 620, "t2", "s2", "t2"), // sent 50 ms before the login, served after its write
				held(750, 790, "t2", "s2", "t2"),
			}, want: 0},
		{name: "the session held the app's current token before the login",
			samples: []sample{
				held(0, 40, "t2", "s1", "t2"),
				held(250, 620, "t2", "s2", "t2"),
				held(750, 790, "t2", "s2", "t2"),
			}, want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := stillValidCalls(p, tc.samples, harness.Ledger{Calls: []harness.LedgerCall{login}}, nil); len(got) != tc.want {
				t.Errorf("%d needless calls %v, want %d", len(got), got, tc.want)
			}
		})
	}
}

// A held or dropped answer was decided when its call arrived; any other when it was answered.
func TestIssuedAt(t *testing.T) {
	at := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	done := at.Add(4 * time.Second)
	for _, c := range []struct {
		chaos string
		want  time.Time
	}{{"hold", at}, {"drop", at}, {"", done}} {
		if got := issuedAt(harness.LedgerCall{At: at, Done: done, Chaos: c.chaos}); !got.Equal(c.want) {
			t.Errorf("%q: %v, want %v", c.chaos, got, c.want)
		}
	}
}
