package lockout

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

const k = "https://ts\x00fleet"

var (
	wrong1 = Digest("fleet", "a")
	wrong2 = Digest("fleet", "b")
	wrong3 = Digest("fleet", "c")
	right  = Digest("fleet", "ok")
)

func TestGateNeverLetsAUsernameReachTheLock(t *testing.T) {
	g := New()
	steps := []struct {
		name       string
		act        func()
		digest     string
		deliberate bool
		allowed    bool
	}{
		{name: "a first login", digest: wrong1, allowed: true},
		{name: "a refused password, even on request", act: func() { g.Failed(k, wrong1, at(1)) }, digest: wrong1, deliberate: true},
		{name: "a changed password gets one try", digest: wrong2, allowed: true},
		{name: "after 2 failures the operator stops by itself", act: func() { g.Failed(k, wrong2, at(2)) }, digest: wrong3},
		{name: "a person may ask once more", digest: wrong3, deliberate: true, allowed: true},
		{name: "the hard cap holds one short of the lock", act: func() { g.Failed(k, wrong3, at(3)); g.Failed(k, Digest("fleet", "d"), at(4)) }, digest: right, deliberate: true},
		{name: "a success resets the count and the refusals", act: func() { g.Succeeded(k, at(5)) }, digest: wrong1, allowed: true},
	}
	for _, s := range steps {
		if s.act != nil {
			s.act()
		}
		ok, why := g.Allow(k, s.digest, s.deliberate)
		if ok != s.allowed || (!ok && why == "") {
			t.Fatalf("%s: allowed=%v (%q), want %v; count %+v", s.name, ok, why, s.allowed, g.Count(k))
		}
	}
	if c := g.Count(k); c.Failures != 0 || !c.At.Equal(at(5)) {
		t.Fatalf("count after the success = %+v", c)
	}
}

func TestGateTellsARefusedPasswordFromALimit(t *testing.T) {
	g := New()
	g.Failed(k, wrong1, at(1))
	g.Failed(k, wrong2, at(2))
	if !g.Refused(k, wrong1) || g.Refused(k, wrong3) {
		t.Fatal("Refused must be true only for passwords the platform refused")
	}
	if ok, _ := g.Allow(k, wrong3, false); ok {
		t.Fatal("the limit must hold wrong3 back")
	}
	if g.Refused(k, wrong3) {
		t.Fatal("being held back must not mark a password refused")
	}
}

// Issue 8 scenario 4: the sessions' statuses all remember the username's count, each as of when it was
// observed. Whatever order they are merged in (after a restart, or on every pass), a copy older than a
// success never brings the failures back; a newer failure always counts.
func TestGateObservationsLaterWins(t *testing.T) {
	type obs struct {
		c      Count
		digest string
	}
	stale := obs{Count{Failures: 2, At: at(10)}, wrong2}      // a session held back, with its own refused password
	success := obs{Count{Failures: 0, At: at(20)}, ""}        // the session that logged in later
	failAfter := obs{Count{Failures: 1, At: at(30)}, wrong3}  // a refusal after that success
	legacy := obs{Count{Failures: 2}, ""}                     // a status written before counts carried a time
	sameSecond := obs{Count{Failures: 1, At: at(20)}, wrong1} // a refusal in the success's second
	for _, tc := range []struct {
		name        string
		seen        []obs
		want        int
		wantRefused []string
		notRefused  []string
	}{
		{name: "stale, then success", seen: []obs{stale, success}, want: 0, notRefused: []string{wrong2}},
		{name: "success, then stale", seen: []obs{success, stale}, want: 0, notRefused: []string{wrong2}},
		{name: "stale twice (idempotent)", seen: []obs{stale, stale}, want: 2, wantRefused: []string{wrong2}},
		{name: "stale alone", seen: []obs{stale}, want: 2, wantRefused: []string{wrong2}},
		{name: "a failure after the success counts", seen: []obs{failAfter, stale, success}, want: 1, wantRefused: []string{wrong3}, notRefused: []string{wrong2}},
		{name: "legacy copies count until anything newer is known", seen: []obs{legacy}, want: 2},
		{name: "legacy copy after a success", seen: []obs{success, legacy}, want: 0},
		{name: "same second: the higher count wins", seen: []obs{success, sameSecond}, want: 1, wantRefused: []string{wrong1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := New()
			for _, o := range tc.seen {
				g.Observe(k, o.c, o.digest)
			}
			if got := g.Count(k).Failures; got != tc.want {
				t.Errorf("failures = %d, want %d", got, tc.want)
			}
			for _, d := range tc.wantRefused {
				if !g.Refused(k, d) {
					t.Errorf("a password refused after the last success is not remembered")
				}
			}
			for _, d := range tc.notRefused {
				if g.Refused(k, d) {
					t.Errorf("a refusal from before a success is remembered")
				}
			}
		})
	}
}

// Issue 8 scenario 4, in the gate: a session held back copies the count; a success elsewhere resets it;
// the held-back session's copy, observed again, leaves the username free.
func TestGateStaleCopyDoesNotRearm(t *testing.T) {
	g := New()
	g.Failed(k, wrong1, at(1))
	g.Failed(k, wrong2, at(2))
	held := g.Count(k) // what the held-back session writes into its status
	if ok, _ := g.Allow(k, right, false); ok {
		t.Fatal("2 failures must hold automatic logins back")
	}
	g.Succeeded(k, at(60))
	g.Observe(k, held, wrong2)
	if ok, why := g.Allow(k, right, false); !ok {
		t.Fatalf("a stale copy re-armed the gate: %s", why)
	}
	if g.Refused(k, wrong2) {
		t.Fatal("a refusal from before the success came back")
	}
}

func TestKeyAndDigest(t *testing.T) {
	if Key("https://a", "u") == Key("https://b", "u") || Key("https://a", "u") == Key("https://a", "v") {
		t.Fatal("keys must differ per endpoint and username")
	}
	d := Digest("u", "p")
	if d == Digest("u", "q") || d == Digest("v", "p") || len(d) != 64 {
		t.Fatal("digests must differ per username and password")
	}
}
