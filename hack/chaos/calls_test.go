package main

import "testing"

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
		if got := needlessLogin(p, before, c.after, "u"); got != c.want {
			t.Errorf("%s: needless = %v, want %v", c.name, got, c.want)
		}
	}
}
