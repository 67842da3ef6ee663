package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// row is one line of the table: a count, its limit ("" when reported only) and whether it holds.
type row struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Limit string `json:"limit,omitempty"`
	OK    bool   `json:"ok"`
}

// Report is a run's outcome.
type Report struct {
	Seed       uint64         `json:"seed"`
	Start      time.Time      `json:"start"`
	Duration   time.Duration  `json:"duration"`
	Rows       []row          `json:"rows"`
	Faults     map[string]int `json:"faults"`
	Details    []string       `json:"details,omitempty"`
	Violations int            `json:"violations"`
	Dir        string         `json:"dir,omitempty"`
}

func (r *Report) gate(name string, v int, limit int, why string) {
	ok := v <= limit
	r.Rows = append(r.Rows, row{Name: name, Value: fmt.Sprint(v), Limit: fmt.Sprintf("≤ %d", limit), OK: ok})
	if !ok {
		r.Violations++
		if why != "" {
			r.Details = append(r.Details, name+": "+why)
		}
	}
}

func (r *Report) info(name, value string) {
	r.Rows = append(r.Rows, row{Name: name, Value: value, OK: true})
}

// Print writes the table.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\nchaos: seed %d, %v of faults from %s\n\n", r.Seed, r.Duration, r.Start.Format(time.TimeOnly))
	fmt.Fprintf(w, "| %-58s | %-28s | %-6s | %s |\n", "count", "value", "limit", "ok")
	fmt.Fprintf(w, "|%s|%s|%s|----|\n", strings.Repeat("-", 60), strings.Repeat("-", 30), strings.Repeat("-", 8))
	for _, x := range r.Rows {
		ok := "yes"
		if !x.OK {
			ok = "NO"
		}
		fmt.Fprintf(w, "| %-58s | %-28s | %-6s | %s |\n", x.Name, x.Value, x.Limit, ok)
	}
	var fs []string
	for k, v := range r.Faults {
		fs = append(fs, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(fs)
	fmt.Fprintf(w, "\nfaults injected: %s\n", strings.Join(fs, ", "))
	for _, d := range r.Details {
		fmt.Fprintln(w, "  -", d)
	}
	if r.Dir != "" {
		fmt.Fprintln(w, "logs kept in", r.Dir)
	}
	if r.Violations > 0 {
		fmt.Fprintf(w, "\n%d violation(s); rerun with --seed %d\n", r.Violations, r.Seed)
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

func (e *env) verdict(ctx context.Context, p *population, smp *sampler, led harness.Ledger, rep *Report) error {
	e.log.mu.Lock()
	blocked := append([]window(nil), e.log.blocked...)
	rep.Faults = map[string]int{}
	for k, v := range e.log.counts {
		rep.Faults[k] = v
	}
	e.log.mu.Unlock()
	t0 := smp.samples[0].at
	rep.Start = t0

	var calls []callAt
	issued := map[string]time.Time{} // credential -> first delivered or applied
	for _, c := range led.Calls {
		calls = append(calls, callAt{at: c.At, done: c.Done, subject: c.Subject, retryAfter: c.RetryAfter,
			refused: c.Status != 200 || c.Chaos != ""})
		for _, v := range c.Issued {
			if _, seen := issued[v]; !seen {
				issued[v] = c.Done
			}
			p.sensitive.Add("a credential the simulator issued ("+c.Route+")", v)
		}
		if c.Used != "" {
			p.sensitive.Add("a credential presented upstream ("+c.Route+")", c.Used)
		}
	}
	for _, r := range led.Resets {
		p.sensitive.AddUWSCredentials(strings.TrimPrefix(r.User, "m2m:"), r.Password)
	}

	// Dead credentials.
	spans := deadSpans(p, smp.samples, blocked, calls)
	var un, av time.Duration
	for _, d := range spans {
		un += d.unavoidable
		av += d.avoidable
		if d.avoidable >= sampleEvery/2 {
			rep.Details = append(rep.Details, fmt.Sprintf("%s dead from +%s to +%s: %s avoidable, %s unavoidable",
				p.creds[d.cred].secret, secs(d.start.Sub(t0)), secs(d.end.Sub(t0)), secs(d.avoidable), secs(d.unavoidable)))
		}
	}
	rep.info("secret-seconds holding a dead credential, unavoidable", secs(un)+fmt.Sprintf(" in %d spans", len(spans)))
	avoidable := int(av / sampleEvery) // in samples: 0 means none
	rep.Rows = append(rep.Rows, row{Name: "secret-seconds holding a dead credential, avoidable", Value: secs(av), Limit: "0", OK: avoidable == 0})
	if avoidable > 0 {
		rep.Violations++
	}

	// Cloud grants.
	cs, err := e.sim.CloudStats()
	if err != nil {
		return err
	}
	rep.gate("refresh-token reuses", cs.RefreshTokenReuses, 0, "")
	rep.gate("authorization-code reuses", cs.CodeReuses, 0, "")
	lost := map[string]bool{}
	for _, s := range smp.samples {
		for _, ca := range s.unauthorized {
			lost[ca] = true
		}
	}
	var rts []string
	for _, ca := range p.clouds {
		rts = append(rts, smp.refresh[ca])
	}
	if live, err := e.sim.Live(rts); err == nil {
		for i, ca := range p.clouds {
			if !live[i] {
				lost[ca] = true
			}
		}
	}
	var lostNames []string
	for ca := range lost {
		lostNames = append(lostNames, ca)
	}
	sort.Strings(lostNames)
	rep.gate("grants lost without a refusal", len(lost), 0, strings.Join(lostNames, ", "))
	rep.info("invalid_grant answers", fmt.Sprint(cs.InvalidGrants))

	// Passwords.
	lostPw := 0
	for _, r := range led.Resets {
		if !smp.passwords[r.User][r.Password] {
			lostPw++
			rep.Details = append(rep.Details, fmt.Sprintf("the reset of %s at +%s never reached its credentials Secret", r.User, secs(r.At.Sub(t0))))
		}
	}
	rep.info("password resets applied", fmt.Sprint(len(led.Resets)))
	rep.gate("passwords lost", lostPw, 0, "")
	maxRun, maxVersion, worst := failedLogins(p, led)
	rep.gate("most consecutive failed logins of a user", maxRun, 4, worst)
	rep.gate("most failed logins with one password", maxVersion, 2, worst)
	locked := 0
	for _, u := range p.allUsers {
		info, err := e.sim.M2MUser(u)
		if err != nil {
			return err
		}
		if info.Locked {
			locked++
		}
	}
	rep.gate("locked accounts", locked, 0, "")

	// Calls.
	early := 0
	for _, c := range led.Calls {
		if c.WithinRetryAfter {
			early++
			rep.Details = append(rep.Details, fmt.Sprintf("%s for %s at +%s within an earlier Retry-After", c.Route, c.Subject, secs(c.At.Sub(t0))))
		}
	}
	rep.gate("calls within Retry-After", early, 0, "")
	needless := stillValidCalls(p, smp.samples, led, issued)
	var byRestart, rejected []needlessCall
	for _, c := range needless {
		switch {
		case within(blocked, "m2m", c.at, 5*time.Second):
			rejected = append(rejected, c) // the gateway refused the Bearer: asking for a token is the answer
		case e.restartedAt(blocked, c.at, 30*time.Second):
			byRestart = append(byRestart, c)
		}
	}
	rep.gate("calls by a restarted manager for still-valid credentials", len(byRestart), 0, describeCalls(byRestart, t0))
	rep.info("calls for still-valid credentials at any time (after a Bearer refusal)",
		fmt.Sprintf("%d (%d)", len(needless), len(rejected)))
	for _, m := range minimums(led) {
		rep.info(m.name, m.value)
	}

	// Leaks.
	leaks, err := e.scanLeaks(ctx, p)
	if err != nil {
		return err
	}
	rep.gate("credential bytes in logs, events, status, metrics", len(leaks), 0, strings.Join(leaks, "; "))
	rep.info("samples (missed)", fmt.Sprintf("%d (%d)", len(smp.samples), smp.missed))
	return nil
}

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
// token, Verizon Cloud token calls while every CloudAuthorization's token had time left.
func stillValidCalls(p *population, samples []sample, led harness.Ledger, issued map[string]time.Time) []needlessCall {
	last := func(at time.Time) *sample {
		i := sort.Search(len(samples), func(i int) bool { return !samples[i].at.Before(at) })
		if i == 0 {
			return nil
		}
		return &samples[i-1]
	}
	left := func(v string, lifetime time.Duration, at time.Time) time.Duration {
		t, ok := issued[v]
		if !ok {
			return 0
		}
		return t.Add(lifetime).Sub(at)
	}
	var out []needlessCall
	for _, c := range led.Calls {
		s := last(c.At)
		if s == nil || c.Chaos == "fault" {
			continue
		}
		needless := false
		switch {
		case c.Route == harness.RouteToken || c.Route == harness.RouteRevoke:
			key := strings.TrimPrefix(c.Subject, "ts:")
			holders := 0
			needless = true
			for i, cr := range p.creds {
				if cr.kind != "app" || !containsStr(cr.keys, key) {
					continue
				}
				if cr.standby {
					needless = false
					break
				}
				holders++
				st := s.creds[i]
				window := 2 * time.Second // a plain app renews at expiry (expires_in is whole seconds)
				if cr.owner == "renew"+strings.TrimPrefix(key, "k-renew") {
					window = renewalWindow(cr)
				}
				if !st.exists || !st.live || left(st.values[0], tokenLifetime, c.At) <= window {
					needless = false
				}
			}
			needless = needless && holders > 0
		case c.Route == harness.RouteM2MLogin:
			user := strings.TrimPrefix(c.Subject, "m2m:")
			for i, cr := range p.creds {
				if cr.kind != "session" || cr.user != user || cr.relogin {
					continue
				}
				st := s.creds[i]
				appToken := ""
				for j, a := range p.creds {
					if a.owner == cr.app && s.creds[j].exists {
						appToken = s.creds[j].values[0]
					}
				}
				needless = st.exists && st.live && st.values[1] == appToken
			}
		case c.Route == harness.RouteCloudToken && c.Used != "":
			needless = true
			for i, cr := range p.creds {
				if cr.kind != "cloud" {
					continue
				}
				st := s.creds[i]
				if !st.exists || !st.live || left(st.values[0], cloudLifetime, c.At) <= renewalWindow(cr) {
					needless = false
				}
			}
		}
		if needless {
			out = append(out, needlessCall{at: c.At, route: c.Route, subject: c.Subject})
		}
	}
	return out
}

// needlessCall is an upstream call made for a credential that was still valid.
type needlessCall struct {
	at             time.Time
	route, subject string
}

func describeCalls(cs []needlessCall, t0 time.Time) string {
	var out []string
	for i, c := range cs {
		if i == 10 {
			out = append(out, fmt.Sprintf("and %d more", len(cs)-i))
			break
		}
		out = append(out, fmt.Sprintf("%s for %s at +%s", c.route, c.subject, secs(c.at.Sub(t0))))
	}
	return strings.Join(out, "; ")
}

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

// minimums compares the successful upstream calls with the physical minimum: one token call per
// ThingSpace token issued, one Cloud token call per access token issued. Faulted, dropped and held
// calls are counted apart: they are the faults' share.
func minimums(led harness.Ledger) []minimum {
	type tally struct{ ok, failed, distinct int }
	fam := map[string]*tally{}
	seen := map[string]bool{}
	for _, c := range led.Calls {
		var f string
		switch c.Route {
		case harness.RouteToken:
			f = "ThingSpace token"
		case harness.RouteCloudToken:
			f = "Verizon Cloud token"
		case harness.RouteM2MLogin:
			f = "M2M login"
		default:
			continue
		}
		t := fam[f]
		if t == nil {
			t = &tally{}
			fam[f] = t
		}
		if c.Status != 200 || c.Chaos != "" {
			t.failed++
		} else {
			t.ok++
		}
		if len(c.Issued) > 0 && !seen[c.Issued[0]] {
			seen[c.Issued[0]] = true
			t.distinct++
		}
	}
	var out []minimum
	for _, f := range []string{"ThingSpace token", "M2M login", "Verizon Cloud token"} {
		if t := fam[f]; t != nil {
			out = append(out, minimum{f + " calls: answered / minimum (+ faulted)",
				fmt.Sprintf("%d / %d (+ %d)", t.ok, t.distinct, t.failed)})
		}
	}
	return out
}

// scanLeaks looks for every credential the run saw (and Authorization header shapes) in the managers'
// logs, the namespace's Events, the objects' statuses and the metrics of every replica.
func (e *env) scanLeaks(ctx context.Context, p *population) ([]string, error) {
	var found []string
	add := func(ls []harness.Leak) {
		for _, l := range ls {
			found = append(found, l.String())
		}
	}
	for _, r := range e.mgrs {
		b, _ := os.ReadFile(r.mgr.LogPath)
		add(p.sensitive.Scan(r.name+"'s log", string(b)))
		if m, err := r.mgr.Metrics(); err == nil {
			add(p.sensitive.Scan(r.name+"'s metrics", m))
		}
	}
	evs := &corev1.EventList{}
	if err := e.cp.Client.List(ctx, evs, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	for _, ev := range evs.Items {
		add(p.sensitive.Scan("an Event", ev.Message+" "+ev.Reason))
	}
	lists := []client.ObjectList{&v1alpha1.ThingSpaceAppList{}, &v1alpha1.M2MSessionList{}, &v1alpha1.CloudAuthorizationList{}}
	for _, l := range lists {
		if err := e.cp.Client.List(ctx, l, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(l)
		add(p.sensitive.Scan(fmt.Sprintf("a %T", l), string(b)))
	}
	return found, nil
}
