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

func apiRestarts(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	var out []string
	for _, d := range ds {
		out = append(out, secs(d))
	}
	return strings.Join(out, ", ")
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

func (e *env) verdict(ctx context.Context, p *population, smp *sampler, led harness.Ledger, rep *Report) error {
	e.log.mu.Lock()
	blocked := append([]window(nil), e.log.blocked...)
	rep.Faults = map[string]int{}
	for k, v := range e.log.counts {
		rep.Faults[k] = v
	}
	apiBack := append([]time.Duration(nil), e.log.apiBack...)
	e.log.mu.Unlock()
	t0 := smp.samples[0].at
	rep.Start = t0

	var calls []callAt
	issued := map[string]time.Time{} // credential -> first delivered or applied
	for _, c := range led.Calls {
		calls = append(calls, callAt{at: c.At, done: c.Done, subject: c.Subject, retryAfter: c.RetryAfter, issued: c.Issued,
			refused: c.Status != 200 || c.Chaos != "", delivered: c.Status == 200 && c.Chaos == "hold"})
		for _, v := range c.Issued {
			if _, seen := issued[v]; !seen {
				issued[v] = issuedAt(c)
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

	spans := deadSpans(p, smp.samples, blocked, calls)
	kills := e.sigkills()
	// Once a grant is lost by physics (see losses.go), nothing but a person's consent brings its
	// Secret back: what follows is unavoidable.
	for i, d := range spans {
		cr := p.creds[d.cred]
		if cr.kind == "cloud" {
			if cause, c, _ := grantLoss(led, smp.refresh[cr.owner], kills); cause.physics() && !c.Done.After(d.start) {
				spans[i].unavoidable, spans[i].avoidable = d.end.Sub(d.start), 0
			}
		}
		// Likewise a session whose user's password was lost by physics before the span began.
		if cr.kind == "session" {
			for _, r := range led.Resets {
				if c, ok := resetCall(led, r); ok && r.User == cr.user && !smp.passwords[r.User][r.Password] &&
					passwordLoss(led, r, kills).physics() && !c.Done.After(d.start) {
					spans[i].unavoidable, spans[i].avoidable = d.end.Sub(d.start), 0
				}
			}
		}
	}
	rep.deadTable(p, spans, t0)
	if err := e.grantTable(p, smp, led, rep); err != nil {
		return err
	}
	if err := e.loginTable(p, smp, led, rep, t0); err != nil {
		return err
	}
	e.callTable(p, smp, led, blocked, issued, rep, t0)

	// Leaks.
	leaks, err := e.scanLeaks(ctx, p)
	if err != nil {
		return err
	}
	rep.gate("credential bytes in logs, events, status, metrics", len(leaks), 0, strings.Join(leaks, "; "))
	rep.info("kube-apiserver restarts serving after (each)", apiRestarts(apiBack))
	rep.info("samples (missed)", fmt.Sprintf("%d (%d)", len(smp.samples), smp.missed))
	return nil
}

func (r *Report) deadTable(p *population, spans []deadSpan, t0 time.Time) {
	var un, av time.Duration
	for _, d := range spans {
		un += d.unavoidable
		av += d.avoidable
		if d.avoidable >= sampleEvery/2 {
			r.Details = append(r.Details, fmt.Sprintf("%s dead from +%s to +%s: %s avoidable, %s unavoidable",
				p.creds[d.cred].secret, secs(d.start.Sub(t0)), secs(d.end.Sub(t0)), secs(d.avoidable), secs(d.unavoidable)))
		}
	}
	r.info("secret-seconds holding a dead credential, unavoidable", secs(un)+fmt.Sprintf(" in %d spans", len(spans)))
	avoidable := int(av / sampleEvery) // in samples: 0 means none
	r.Rows = append(r.Rows, row{Name: "secret-seconds holding a dead credential, avoidable", Value: secs(av), Limit: "0", OK: avoidable == 0})
	if avoidable > 0 {
		r.Violations++
	}
}

func (e *env) grantTable(p *population, smp *sampler, led harness.Ledger, rep *Report) error {
	cs, err := e.sim.CloudStats()
	if err != nil {
		return err
	}
	rep.gate("refresh-token reuses", cs.RefreshTokenReuses, 0, "")
	rep.gate("authorization-code reuses", cs.CodeReuses, 0, "")
	lost := lostGrants(p.clouds, smp.samples)
	// A grant is lost by physics when its last refresh was applied upstream and the answer reached no
	// manager (losses.go); when the upstream refused a refresh token nobody rotated; and otherwise by
	// the operator.
	var lostNames, physics, refused []string
	kills := e.sigkills()
	for ca := range lost {
		cause, _, why := grantLoss(led, smp.refresh[ca], kills)
		switch {
		case cause.physics():
			physics = append(physics, ca+": "+cause.String())
		case cause == lossRefused:
			refused = append(refused, ca)
		default:
			lostNames = append(lostNames, ca+" ("+why+")")
		}
	}
	sort.Strings(lostNames)
	sort.Strings(physics)
	sort.Strings(refused)
	rep.gate("grants lost without a refusal from the upstream", len(lostNames), 0, strings.Join(lostNames, "; "))
	rep.info("grants lost by physics: refresh applied, answer to no manager", fmt.Sprintf("%d %v", len(physics), physics))
	rep.info("grants lost to an upstream refusal", fmt.Sprintf("%d %v", len(refused), refused))
	rep.info("invalid_grant answers", fmt.Sprint(cs.InvalidGrants))
	return nil
}

func (e *env) loginTable(p *population, smp *sampler, led harness.Ledger, rep *Report, t0 time.Time) error {
	lostPw := 0
	var physics []string
	kills := e.sigkills()
	for _, r := range led.Resets {
		if passwordReached(led, r, smp.passwords[r.User]) {
			continue
		}
		// As for grants: a reset whose answer (the new password) reached no manager is lost by physics.
		if cause := passwordLoss(led, r, kills); cause.physics() {
			physics = append(physics, fmt.Sprintf("%s at +%s: %s", r.User, secs(r.At.Sub(t0)), cause))
			continue
		}
		lostPw++
		rep.Details = append(rep.Details, fmt.Sprintf("the reset of %s at +%s reached a manager and never its credentials Secret", r.User, secs(r.At.Sub(t0))))
	}
	rep.info("password resets applied", fmt.Sprint(len(led.Resets)))
	rep.gate("passwords lost", lostPw, 0, "")
	rep.info("passwords lost by physics: reset applied, answer to no manager", fmt.Sprintf("%d %v", len(physics), physics))
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
	return nil
}

func (e *env) callTable(p *population, smp *sampler, led harness.Ledger, blocked []window, issued map[string]time.Time, rep *Report, t0 time.Time) {
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
	for _, m := range minimums(led, smp.held) {
		rep.info(m.name, m.value)
	}
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

// resetCall is the reset call during which r was applied.
func resetCall(led harness.Ledger, r harness.LedgerReset) (harness.LedgerCall, bool) {
	for _, c := range led.Calls {
		if c.Route == harness.RouteM2MReset && c.Subject == "m2m:"+r.User && !r.At.Before(c.At) && !r.At.After(c.Done) {
			return c, true
		}
	}
	return harness.LedgerCall{}, false
}
