// Command chaos is the chaos and soak suite (issue 14): the real manager (two replicas with leader
// election) and thingspace-sim binaries on envtest's kube-apiserver and etcd (KUBEBUILDER_ASSETS, else
// bin/k8s), with a mixed population and compressed lifetimes, while a seeded random schedule kills and
// stops managers, restarts and cuts off the API server, slows its writes, and makes the upstream fail,
// throttle, drop answers it applied, hold them past the timeout, go down and refuse Bearers. It counts,
// from the simulator's ledger and by sampling every Secret every 250 ms, what must never happen, prints
// a table and exits non-zero on any violation.
//
//	make chaos                                         # 10 minutes, a random seed (printed)
//	go run ./hack/chaos --duration 2m --seed 1 --faults kill,storm
//
// What "avoidable" means for a dead credential is in verdict.go; the README has the latest figures.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/credops/thingspace-operator/hack/internal/interrupt"
	"github.com/credops/thingspace-operator/test/harness"
)

// Options configure a run.
type Options struct {
	Duration time.Duration
	Seed     uint64
	Faults   string
	Sets     int
	Replicas int
	Keep     bool
	// Progress gets a line per phase (stderr for the command).
	Progress io.Writer
}

func main() {
	var o Options
	var jsonOut bool
	flag.DurationVar(&o.Duration, "duration", 10*time.Minute, "how long faults are injected")
	flag.Uint64Var(&o.Seed, "seed", 0, "seed of the fault schedule (0: a random one, printed)")
	flag.StringVar(&o.Faults, "faults", "all", "comma-separated fault mix: all, none or some of "+fmt.Sprint(allFaults))
	flag.IntVar(&o.Sets, "sets", 1, "population sets: each has 4 ThingSpaceApps (2 sharing a key, 1 renewBefore, 1 standby), 3 M2MSessions (1 rotating its password), 2 CloudAuthorizations")
	flag.IntVar(&o.Replicas, "replicas", 2, "manager replicas (leader election)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the logs even when the run is clean")
	flag.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	flag.Parse()
	if o.Seed == 0 {
		o.Seed = rand.Uint64N(1<<31) + 1
	}
	o.Progress = os.Stderr
	ctx, cancel := context.WithCancel(context.Background())
	go interrupt.CancelOnSignals(cancel, nil, func() {})
	rep, err := Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	if jsonOut {
		_ = json.NewEncoder(os.Stdout).Encode(rep)
	} else {
		rep.Print(os.Stdout)
	}
	if rep.Violations > 0 {
		os.Exit(1)
	}
}

func progress(o Options, format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "chaos: "+format+"\n", args...)
	}
}

// Run runs the suite once and reports; an error means it could not measure.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Sets < 1 {
		o.Sets = 1
	}
	if o.Replicas < 1 {
		o.Replicas = 1
	}
	faults, err := parseFaults(o.Faults)
	if err != nil {
		return nil, err
	}
	progress(o, "seed %d; starting the control plane, the simulator and %d managers", o.Seed, o.Replicas)
	e, err := startEnv(ctx, o)
	if err != nil {
		return nil, err
	}
	rep := &Report{Seed: o.Seed, Duration: o.Duration}
	defer func() {
		e.stop()
		if rep.Violations == 0 && !o.Keep {
			_ = os.RemoveAll(e.dir)
		} else {
			rep.Dir = e.dir
		}
	}()
	p, err := e.createPopulation(ctx)
	if err != nil {
		return nil, err
	}
	smp := newSampler(e, p)
	progress(o, "consenting for %d CloudAuthorizations", len(p.clouds))
	if err := e.consent(ctx, p); err != nil {
		if os.Getenv("CHAOS_HOLD") != "" {
			progress(o, "holding: %v", err)
			time.Sleep(2 * time.Minute)
		}
		return nil, err
	}
	if err := e.settle(ctx, smp, 90*time.Second); err != nil {
		return nil, fmt.Errorf("before the faults: %w", err)
	}
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() { smp.run(sctx); close(sampled) }()
	wctx, stopWatchdog := context.WithCancel(ctx)
	go e.watchdog(wctx)

	progress(o, "injecting faults for %v", o.Duration)
	fctx, stopFaults := context.WithTimeout(ctx, o.Duration)
	(&schedule{e: e, rnd: rand.New(rand.NewPCG(o.Seed, o.Seed^0x5851f42d4c957f2d)), faults: faults}).run(fctx)
	stopFaults()
	_ = e.sim.SetFaults(harnessFaultsNone)
	e.setChaos(harnessChaosNone)
	_ = e.sim.SetM2MRejectBearers(false)
	e.proxy.setDown(false)
	e.proxy.setSlow(0)
	progress(o, "faults over; waiting for every Secret to hold a live credential and every reset's password to land")
	// The settle is part of the run: dead time in it counts like any other.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil && (!allLive(smp) || e.passwordsUnsettled(smp)) {
		time.Sleep(sampleEvery)
	}
	time.Sleep(2 * sampleEvery)
	stopWatchdog()
	stopSampling()
	<-sampled
	// The verdict takes each grant as the last sample saw it (lostGrants). A refresh applied upstream
	// just before that sample leaves the rotated token in the Secret until its answer is stored: within
	// the upstream timeout and one write (no faults now). Sample on until every grant holds a live
	// refresh token, that long at most; the ledger is read after, holding every call before it.
	grace := time.Now().Add(upstreamTimeout + time.Second)
	for !grantsLive(smp) && time.Now().Before(grace) && ctx.Err() == nil {
		time.Sleep(sampleEvery)
		smp.once(ctx)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if len(smp.samples) == 0 {
		return nil, fmt.Errorf("no samples")
	}
	led, err := e.sim.Ledger()
	if err != nil {
		return nil, err
	}
	if err := e.verdict(ctx, p, smp, led, rep); err != nil {
		return nil, err
	}
	if rep.Violations > 0 || o.Keep {
		e.keepEvidence(led, smp)
	}
	return rep, nil
}

// passwordsUnsettled reports whether a reset's password may still be on its way to its Secret
// (unsettledResets); a ledger it cannot read says so too, until the deadline.
func (e *env) passwordsUnsettled(smp *sampler) bool {
	led, err := e.sim.Ledger()
	return err != nil || len(unsettledResets(led, smp.seenPasswords(), e.sigkills())) > 0
}

// settle waits until every Secret holds a live credential (before the faults start).
func (e *env) settle(ctx context.Context, smp *sampler, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		smp.once(ctx)
		if allLive(smp) {
			smp.samples = nil // the run starts now
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(sampleEvery):
		}
	}
	if n := len(smp.samples); n > 0 {
		for i, st := range smp.samples[n-1].creds {
			if !st.exists || !st.live {
				return fmt.Errorf("%s holds no live credential after %v", smp.p.creds[i].secret, timeout)
			}
		}
	}
	return fmt.Errorf("no live credentials after %v", timeout)
}

// keepEvidence writes the ledger and the timeline next to the logs. The ledger holds credentials of
// this run only (the simulator's, dead with it).
func (e *env) keepEvidence(led harness.Ledger, smp *sampler) {
	b, _ := json.MarshalIndent(led, "", " ")
	_ = os.WriteFile(filepath.Join(e.dir, "ledger.json"), b, 0o600)
	e.log.mu.Lock()
	tl := strings.Join(e.log.timeline, "\n") + "\n"
	e.log.mu.Unlock()
	var dead strings.Builder
	for _, s := range smp.samples {
		for i, st := range s.creds {
			if st.exists && !st.live {
				fmt.Fprintf(&dead, "%s %s dead %v\n", s.at.UTC().Format("15:04:05.000"), smp.p.creds[i].secret, st.parts)
			}
		}
	}
	_ = os.WriteFile(filepath.Join(e.dir, "timeline.txt"), []byte(tl+dead.String()), 0o600)
}

func allLive(smp *sampler) bool {
	n := len(smp.samples)
	if n == 0 {
		return false
	}
	for _, st := range smp.samples[n-1].creds {
		if !st.exists || !st.live {
			return false
		}
	}
	return true
}

// grantsLive reports whether the last sample found a live refresh token in every grant Secret.
func grantsLive(smp *sampler) bool {
	n := len(smp.samples)
	if n == 0 || len(smp.samples[n-1].grants) != len(smp.p.clouds) {
		return false
	}
	for _, ok := range smp.samples[n-1].grants {
		if !ok {
			return false
		}
	}
	return true
}
