package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/credops/thingspace-operator/test/harness"
)

// failedLogins replays the ledger's logins against the password the simulator had at each one.
func failedLogins(p *population, led harness.Ledger) (maxRun, maxVersion int, worst string) {
	pw := func(user string, at time.Time) string {
		cur := initialPassword(user)
		for _, r := range led.Resets {
			if r.User == user && !r.At.After(at) {
				cur = r.Password
			}
		}
		return cur
	}
	run := map[string]int{}
	version := map[string]int{}
	for _, c := range led.Calls {
		if c.Route != harness.RouteM2MLogin || c.Chaos == "fault" || c.Status == 401 || c.Status == 499 {
			continue
		}
		user := strings.TrimPrefix(c.Subject, "m2m:")
		if c.Used == pw(user, c.At) {
			run[user] = 0
			continue
		}
		run[user]++
		version[user+"\x00"+c.Used]++
		if run[user] > maxRun {
			maxRun, worst = run[user], user
		}
		maxVersion = max(maxVersion, version[user+"\x00"+c.Used])
	}
	return maxRun, maxVersion, worst
}

// stillValidCalls counts upstream calls made while every Secret they could serve held a live
// credential outside its renewal window: ThingSpace token and revoke calls for a key (not a standby
// app's), M2M logins of a keep-alive session whose Secret held a live session with its app's current
// token (not those probing the password after a reset's answer was lost), Verizon Cloud token calls
// while every CloudAuthorization's token had time left.
func stillValidCalls(p *population, samples []sample, led harness.Ledger, issued map[string]time.Time) []needlessCall {
	last := func(at time.Time) *sample { return readBefore(samples, at) }
	next := func(at time.Time) *sample {
		i := sort.Search(len(samples), func(i int) bool { return !samples[i].at.Before(at) })
		if i == len(samples) {
			return nil
		}
		return &samples[i]
	}
	left := func(v string, lifetime time.Duration, at time.Time) time.Duration {
		t, ok := issued[v]
		if !ok {
			return 0
		}
		return t.Add(lifetime).Sub(at)
	}
	var out []needlessCall
	// probing[user]: a reset of the user was applied and its answer lost, and no login has succeeded
	// since. Until one does, a login is how a manager learns which password is in force (the old one
	// fails if the reset took effect): it is for the password, not for the still-valid session.
	probing := map[string]bool{}
	for _, c := range led.Calls {
		user := strings.TrimPrefix(c.Subject, "m2m:")
		switch {
		case c.Route == harness.RouteM2MReset && applied(c) && undelivered(c, nil) != lossOperator:
			probing[user] = true
		case c.Route == harness.RouteM2MLogin && probing[user]:
			probing[user] = c.Status != 200 || c.Chaos != ""
			continue
		}
		s := last(c.At)
		if s == nil || c.Chaos == "fault" {
			continue
		}
		var needless bool
		switch {
		case c.Route == harness.RouteToken || c.Route == harness.RouteRevoke:
			needless = needlessAppCall(p, s, strings.TrimPrefix(c.Subject, "ts:"), func(v string) time.Duration { return left(v, tokenLifetime, c.At) })
		case c.Route == harness.RouteM2MLogin:
			needless = needlessLogin(p, s, next(c.At), strings.TrimPrefix(c.Subject, "m2m:"), func(keys []string) []string {
				return tokensIssuedBefore(led, keys, c.At, handoverSlack)
			})
		case c.Route == harness.RouteCloudToken && c.Used != "":
			needless = needlessRefresh(p, s, func(v string) time.Duration { return left(v, cloudLifetime, c.At) })
		}
		if needless {
			out = append(out, needlessCall{at: c.At, route: c.Route, subject: c.Subject, read: s.readAt()})
		}
	}
	return out
}

// issuedAt is when c's answer was decided: a held or dropped answer when it arrived (the simulator
// decides, then holds or drops; a held answer's end is seconds later), any other when it was answered.
// Seed 66 at 39bcd58: a token first issued by an answer held past the timeout was dated by the next
// call's held answer, 7 s late, and the calls in its last second looked made for a token with 5 s left.
func issuedAt(c harness.LedgerCall) time.Time {
	if c.Chaos == "hold" || c.Chaos == "drop" {
		return c.At
	}
	return c.Done
}

// readBefore is the last sample whose Secrets were all read before at, nil when none was: what the
// Secrets held before a call that reached the simulator at at. A sample's time is when its List was
// sent; the API server serves it some time later (up to hundreds of milliseconds on a loaded machine),
// so a sample stamped before the call may show what the call brought. A handover login comes within
// milliseconds of its app's new token: a List stamped before the login and served after its Secret
// write shows the login's own session with the app's new token, live, and the login looks made for
// a still-valid session. That is the reading of TestChaosShort's failure at ffb68fe (seed 1: the
// rotating session's first handover login, at +41 s on that seed, counted "by a restarted manager");
// no write of the operator pairs the old session with the app's new token while a handover is due.
func readBefore(samples []sample, at time.Time) *sample {
	i := sort.Search(len(samples), func(i int) bool { return !samples[i].readAt().Before(at) })
	if i == 0 {
		return nil
	}
	return &samples[i-1]
}

// needlessAppCall: every app of the key (none with a standby key set) held a live token with more left
// than its renewal window.
func needlessAppCall(p *population, s *sample, key string, left func(string) time.Duration) bool {
	holders := 0
	for i, cr := range p.creds {
		if cr.kind != "app" || !containsStr(cr.keys, key) {
			continue
		}
		if cr.standby {
			return false
		}
		holders++
		st := s.creds[i]
		window := 2 * time.Second // a plain app renews at expiry (expires_in is whole seconds)
		if cr.owner == "renew"+strings.TrimPrefix(key, "k-renew") {
			window = renewalWindow(cr)
		}
		if !st.exists || !st.live || left(st.values[0]) <= window {
			return false
		}
	}
	return holders > 0
}

// needlessLogin: a keep-alive session's Secret (s, read before the login) held a live session with
// its app's current token. The app's token is read from after (the first sample at or after the login,
// s when there is none): at a handover the app's Secret changes a moment before the session logs in
// with its new token, often between two samples, and that login is the design, not a needless one.
// The session follows its app's new token before the app's Secret shows it (internal/announce): a
// login within milliseconds of a token call for one of the app's keys whose answer is not the bearer
// the session holds (justIssued, from the ledger) is for that token, whatever the samples show (seed
// 66 at 2c7801f: a standby handover's login 1 ms after the app's token call).
func needlessLogin(p *population, s, after *sample, user string, justIssued func(keys []string) []string) bool {
	if after == nil {
		after = s
	}
	for i, cr := range p.creds {
		if cr.kind != "session" || cr.user != user || cr.relogin {
			continue
		}
		st := s.creds[i]
		appToken := ""
		var keys []string
		for j, a := range p.creds {
			if a.owner == cr.app && after.creds[j].exists {
				appToken, keys = after.creds[j].values[0], a.keys
			}
		}
		if !st.exists || !st.live {
			return false
		}
		for _, tok := range justIssued(keys) {
			if tok != st.values[1] {
				return false
			}
		}
		return st.values[1] == appToken
	}
	return false
}

// handoverSlack bounds how long before a login the token call it follows (its app's new token) ended.
const handoverSlack = 2 * time.Second

// tokensIssuedBefore lists the tokens answered to ThingSpace token calls for keys that ended in the
// within before at.
func tokensIssuedBefore(led harness.Ledger, keys []string, at time.Time, within time.Duration) []string {
	var out []string
	for _, c := range led.Calls {
		if c.Route != harness.RouteToken || c.Status != 200 || c.Chaos != "" || !containsStr(keys, strings.TrimPrefix(c.Subject, "ts:")) {
			continue
		}
		if c.Done.After(at) || !c.Done.After(at.Add(-within)) {
			continue
		}
		out = append(out, c.Issued...)
	}
	return out
}

// needlessRefresh: every CloudAuthorization's Secret held an access token with more left than its
// renewal window.
func needlessRefresh(p *population, s *sample, left func(string) time.Duration) bool {
	for i, cr := range p.creds {
		if cr.kind != "cloud" {
			continue
		}
		st := s.creds[i]
		if !st.exists || !st.live || left(st.values[0]) <= renewalWindow(cr) {
			return false
		}
	}
	return true
}

// needlessCall is an upstream call made for a credential that was still valid.
type needlessCall struct {
	at             time.Time
	route, subject string
	// read is when the sample that showed the credential still valid was read.
	read time.Time
}

func describeCalls(cs []needlessCall, t0 time.Time) string {
	var out []string
	for i, c := range cs {
		if i == 10 {
			out = append(out, fmt.Sprintf("and %d more", len(cs)-i))
			break
		}
		out = append(out, fmt.Sprintf("%s for %s at +%s (the Secrets as read %s before)", c.route, c.subject, secs(c.at.Sub(t0)), ms(c.at.Sub(c.read))))
	}
	return strings.Join(out, "; ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

// within reports whether t is in a blocked window of kind what, or less than after its end.
func within(ws []window, what string, t time.Time, after time.Duration) bool {
	for _, w := range ws {
		if w.what == what && !t.Before(w.start) && t.Before(w.end.Add(after)) {
			return true
		}
	}
	return false
}

// restartedAt reports whether t is less than d after a replica started or a replica took the lead.
func (e *env) restartedAt(ws []window, t time.Time, d time.Duration) bool {
	for _, w := range ws {
		if w.what == "leader" && !t.Before(w.end) && t.Before(w.end.Add(d)) {
			return true
		}
	}
	for _, r := range e.mgrs {
		r.mu.Lock()
		starts := append([]time.Time(nil), r.starts...)
		r.mu.Unlock()
		for _, s := range starts[1:] {
			if !t.Before(s) && t.Before(s.Add(d)) {
				return true
			}
		}
	}
	return false
}

func containsStr(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

type minimum struct{ name, value string }

// family is one kind of issuing call and its tally against the physical minimum.
type family struct {
	name  string
	route string
	// calls: all; answered: applied and answered; needed: answered calls whose credential a Secret
	// held (each distinct one once: the minimum); refused: not applied (faults, refusals, timeouts
	// before the work); lost: applied, the answer reaching no manager (the faults' share too).
	calls, answered, needed, refused, lost int
}

// beyond is the answered calls the Secrets did not need: a token asked for again while the gateway
// still handed out the same one, a credential issued and never stored.
func (f family) beyond() int { return f.answered - f.needed }

// minimums tallies, per family of issuing call, the calls against the physical minimum: one answered
// call per distinct credential that a Secret held (held). Refused calls and applied calls whose answer
// was lost are reported apart: they are the faults' share, and each needs a call again.
func minimums(led harness.Ledger, held map[string]bool) []minimum {
	fams := []*family{
		{name: "ThingSpace token", route: harness.RouteToken},
		{name: "M2M login", route: harness.RouteM2MLogin},
		{name: "M2M password reset", route: harness.RouteM2MReset},
		{name: "Verizon Cloud token", route: harness.RouteCloudToken},
	}
	counted := map[string]bool{}
	for _, c := range led.Calls {
		for _, f := range fams {
			if c.Route != f.route {
				continue
			}
			f.calls++
			switch {
			case !applied(c):
				f.refused++
			case undelivered(c, nil) != lossOperator:
				f.lost++
			default:
				f.answered++
				if len(c.Issued) > 0 && held[c.Issued[0]] && !counted[c.Issued[0]] {
					counted[c.Issued[0]] = true
					f.needed++
				}
			}
		}
	}
	var out []minimum
	for _, f := range fams {
		if f.calls == 0 {
			continue
		}
		out = append(out, minimum{"calls beyond the minimum, " + f.name,
			fmt.Sprintf("%d (%d answered, %d needed; %d refused, %d lost)", f.beyond(), f.answered, f.needed, f.refused, f.lost)})
	}
	return out
}
