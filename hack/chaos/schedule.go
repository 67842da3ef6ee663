package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/credops/thingspace-operator/test/harness"
)

// Fault kinds for --faults.
const (
	faultKill    = "kill"    // SIGKILL a manager (the leader more often than not), sometimes amid held answers
	faultTerm    = "term"    // SIGTERM a manager instead
	faultRestart = "restart" // kill kube-apiserver and start it again
	faultOutage  = "outage"  // the API server unreachable for a few seconds (the proxy cuts and refuses)
	faultSlow    = "slow"    // API writes held before they are forwarded
	faultStorm   = "storm"   // 30 % of upstream calls answered 503 or 429 with Retry-After
	faultLatency = "latency" // upstream answers late
	faultDrop    = "drop"    // upstream calls applied, then the connection reset or the answer held past the timeout
	faultDown    = "down"    // every upstream call refused (503, Retry-After): a hard upstream outage
	faultReject  = "reject"  // the gateway refuses every Bearer on the M2M routes
)

var allFaults = []string{faultKill, faultTerm, faultRestart, faultOutage, faultSlow, faultStorm, faultLatency, faultDrop, faultDown, faultReject}

func parseFaults(s string) (map[string]bool, error) {
	out := map[string]bool{}
	if s == "all" {
		s = strings.Join(allFaults, ",")
	}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" || f == "none" {
			continue
		}
		known := false
		for _, k := range allFaults {
			known = known || k == f
		}
		if !known {
			return nil, fmt.Errorf("unknown fault %q (known: %s)", f, strings.Join(allFaults, ","))
		}
		out[f] = true
	}
	return out, nil
}

// schedule injects the faults at seeded random times until ctx ends.
type schedule struct {
	e      *env
	rnd    *rand.Rand
	faults map[string]bool
	wg     sync.WaitGroup
}

func (s *schedule) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rnd.Int64N(int64(hi-lo)+1))
}

func (s *schedule) pick(kinds ...string) string {
	var on []string
	for _, k := range kinds {
		if s.faults[k] {
			on = append(on, k)
		}
	}
	if len(on) == 0 {
		return ""
	}
	return on[s.rnd.IntN(len(on))]
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func (s *schedule) run(ctx context.Context) {
	s.wg.Add(3)
	// Each line of faults draws from its own generator, seeded from the run's, so one line's timing does
	// not depend on how long another's actions took.
	seeds := [3]uint64{s.rnd.Uint64(), s.rnd.Uint64(), s.rnd.Uint64()}
	go func() { defer s.wg.Done(); s.child(seeds[0]).managers(ctx) }()
	go func() { defer s.wg.Done(); s.child(seeds[1]).apiServer(ctx) }()
	go func() { defer s.wg.Done(); s.child(seeds[2]).upstream(ctx) }()
	s.wg.Wait()
}

func (s *schedule) child(seed uint64) *schedule {
	return &schedule{e: s.e, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), faults: s.faults}
}

// managers kills or stops a manager every ~30 s and starts it again a moment later.
func (s *schedule) managers(ctx context.Context) {
	e := s.e
	for sleepCtx(ctx, s.between(20*time.Second, 40*time.Second)) {
		kind := s.pick(faultKill, faultKill, faultKill, faultTerm)
		if kind == "" {
			return
		}
		r := e.mgrs[s.rnd.IntN(len(e.mgrs))]
		if s.rnd.Float64() < 0.6 {
			if l := e.leader(); l != nil {
				r = l
			}
		}
		// Half the kills land while every upstream answer is held: refreshes, resets and code exchanges in
		// flight, applied upstream, their answers not yet read.
		if kind == faultKill && s.rnd.Float64() < 0.5 {
			_ = e.sim.SetChaos(harness.Chaos{HoldRate: 1, Hold: 3 * time.Second})
			sleepCtx(ctx, s.between(500*time.Millisecond, 2*time.Second))
			e.log.count("kill amid held answers")
		}
		wasLeader := e.isLeader(r)
		at := time.Now()
		r.mu.Lock()
		r.down = true
		r.kills = append(r.kills, at)
		if kind == faultKill {
			r.sigkills = append(r.sigkills, at)
		}
		r.mu.Unlock()
		if kind == faultKill {
			_ = r.mgr.Kill()
		} else {
			_ = r.mgr.Stop()
		}
		e.restoreChaos()
		e.log.note("%s %s (leader %v)", kind, r.name, wasLeader)
		e.log.count(kind)
		if wasLeader {
			e.log.count(kind + " (leader)")
			s.wg.Add(1)
			go func() { defer s.wg.Done(); e.awaitLeader(ctx, at, r) }()
		}
		sleepCtx(ctx, s.between(500*time.Millisecond, 3*time.Second))
		e.restart(ctx, r)
	}
}

// apiServer restarts kube-apiserver, cuts it off, or slows its writes, every 40 to 80 s.
func (s *schedule) apiServer(ctx context.Context) {
	e := s.e
	for sleepCtx(ctx, s.between(40*time.Second, 80*time.Second)) {
		switch s.pick(faultRestart, faultOutage, faultSlow) {
		case "":
			return
		case faultRestart:
			start := time.Now()
			e.proxy.setDown(true) // the restart cuts every connection at once
			e.proxy.setDown(false)
			// A restart that has begun completes, even when the run's fault time ends meanwhile.
			downFor := s.between(time.Second, 3*time.Second)
			if err := e.api.restart(context.WithoutCancel(ctx), downFor); err != nil {
				e.log.count("api restart failed")
				e.log.note("api restart: %v", err)
			} else {
				back := time.Since(start.Add(downFor))
				e.log.note("api restart: down %v, serving %v after it was started again", downFor.Round(time.Millisecond), back.Round(time.Millisecond))
				e.log.mu.Lock()
				e.log.apiBack = append(e.log.apiBack, back)
				e.log.mu.Unlock()
			}
			e.log.add("api", start, time.Now())
			e.log.count(faultRestart)
		case faultOutage:
			start := time.Now()
			e.proxy.setDown(true)
			sleepCtx(ctx, s.between(2*time.Second, 6*time.Second))
			e.proxy.setDown(false)
			e.log.add("api", start, time.Now())
			e.log.count(faultOutage)
		case faultSlow:
			e.proxy.setSlow(s.between(200*time.Millisecond, 1500*time.Millisecond))
			sleepCtx(ctx, s.between(10*time.Second, 20*time.Second))
			e.proxy.setSlow(0)
			e.log.count(faultSlow)
		}
	}
}

// upstream opens a window of upstream trouble every 15 to 30 s, for 8 to 20 s (hard outages and
// Bearer rejections for 4 to 8 s).
func (s *schedule) upstream(ctx context.Context) {
	e := s.e
	for sleepCtx(ctx, s.between(15*time.Second, 30*time.Second)) {
		kind := s.pick(faultStorm, faultStorm, faultLatency, faultDrop, faultDrop, faultDown, faultReject)
		if kind == "" {
			return
		}
		length := s.between(8*time.Second, 20*time.Second)
		start := time.Now()
		switch kind {
		case faultStorm:
			status := http.StatusServiceUnavailable
			if s.rnd.IntN(2) == 0 {
				status = http.StatusTooManyRequests
			}
			_ = e.sim.SetFaults(harness.Faults{Rate: 0.3, Status: status, RetryAfter: s.between(time.Second, 2*time.Second)})
		case faultLatency:
			_ = e.sim.SetFaults(harness.Faults{Latency: s.between(500*time.Millisecond, 2*time.Second)})
		case faultDrop:
			e.setChaos(harness.Chaos{DropRate: 0.1, HoldRate: 0.1, Hold: upstreamTimeout + 2*time.Second})
		case faultDown:
			length = s.between(4*time.Second, 8*time.Second)
			_ = e.sim.SetFaults(harness.Faults{Rate: 1, Status: http.StatusServiceUnavailable, RetryAfter: 2 * time.Second})
		case faultReject:
			length = s.between(4*time.Second, 8*time.Second)
			_ = e.sim.SetM2MRejectBearers(true)
		}
		sleepCtx(ctx, length)
		_ = e.sim.SetFaults(harness.Faults{})
		_ = e.sim.SetM2MRejectBearers(false)
		e.setChaos(harness.Chaos{})
		switch kind {
		case faultDown:
			// Retry-After 2s outlasts the window: nothing could land until it has passed.
			e.log.add("upstream", start, time.Now().Add(2*time.Second))
		case faultReject:
			e.log.add("m2m", start, time.Now())
		}
		e.log.count(kind)
	}
}

// setChaos sets the simulator's drop and hold switches and remembers them, so that a kill amid held
// answers can put them back.
func (e *env) setChaos(c harness.Chaos) {
	e.chaosMu.Lock()
	e.chaos = c
	e.chaosMu.Unlock()
	_ = e.sim.SetChaos(c)
}

func (e *env) restoreChaos() {
	e.chaosMu.Lock()
	c := e.chaos
	e.chaosMu.Unlock()
	_ = e.sim.SetChaos(c)
}

// restart starts a replica the schedule stopped again.
func (e *env) restart(ctx context.Context, r *replica) {
	if err := r.mgr.Start(ctx); err != nil && ctx.Err() == nil {
		e.log.count("manager start failed")
		e.log.note("start %s: %v", r.name, err)
	}
	e.log.note("%s ready", r.name)
	r.mu.Lock()
	r.down = false
	if r.mgr.Running() {
		r.starts = append(r.starts, time.Now())
	}
	r.mu.Unlock()
}

// watchdog starts a replica that exited by itself (a leader that could not renew its lease exits).
func (e *env) watchdog(ctx context.Context) {
	for sleepCtx(ctx, time.Second) {
		for _, r := range e.mgrs {
			r.mu.Lock()
			gone := !r.down && !r.mgr.Running()
			if gone {
				r.down = true
				r.kills = append(r.kills, time.Now())
			}
			r.mu.Unlock()
			if gone {
				e.log.count("manager exited by itself")
				at := time.Now()
				go e.awaitLeader(ctx, at, r)
				e.restart(ctx, r)
			}
		}
	}
}

// leader is the replica whose metrics say it leads, nil when none does.
func (e *env) leader() *replica {
	for _, r := range e.mgrs {
		if e.isLeader(r) {
			return r
		}
	}
	return nil
}

func (e *env) isLeader(r *replica) bool {
	if !r.mgr.Running() {
		return false
	}
	m, err := r.mgr.Metrics()
	if err != nil {
		return false
	}
	v, ok := harness.MetricValue(m, "leader_election_master_status", nil)
	return ok && v == 1
}

// awaitLeader records the window from at, when the leader went away, until another replica (or the
// same one, restarted) leads.
func (e *env) awaitLeader(ctx context.Context, at time.Time, _ *replica) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if l := e.leader(); l != nil {
			e.log.add("leader", at, time.Now())
			e.log.note("%s leads", l.name)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.log.add("leader", at, time.Now())
}
