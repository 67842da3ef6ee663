package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/credops/thingspace-operator/test/harness"
)

// rollout is one phase's "create n objects, then wait until all are Ready".
type rollout struct {
	phase, what string
	// did and state name, in the progress lines, what create does and what countReady counts; empty
	// means "created" and "Ready".
	did, state string
	n          int
	create     func(i int) error
	// countReady lists the objects: how many are Ready, and why the others are not. With track set it
	// may be nil: the tracker counts.
	countReady func(ctx context.Context) (ready int, reasons map[string]int, err error)
	// track, when set, follows the objects by a watch; name(i) is the object create(i) is about, so
	// that each one's create→state latency is measured; namespace(i) is its namespace (nil: the
	// benchmark's).
	track     *tracker
	name      func(i int) string
	namespace func(i int) string
}

type rolloutResult struct {
	createSeconds, readySeconds float64
	allReady                    bool
	ready                       int
	notReady                    map[string]int
	latency                     *Latency // with a tracker
}

// runRollout creates r.n objects with o.creators at a time and polls until all are Ready or
// o.readyTimeout passes, timing both from the first create.
func runRollout(ctx context.Context, mgr *harness.Manager, o options, r rollout) (rolloutResult, error) {
	var res rolloutResult
	var created atomic.Int64
	if r.did == "" {
		r.did = "created"
	}
	if r.state == "" {
		r.state = "Ready"
	}
	if r.track != nil && r.countReady == nil {
		r.countReady = r.track.count
	}
	start := time.Now()
	type outcome struct {
		err  error
		took time.Duration
	}
	createDone := make(chan outcome, 1)
	go func() {
		err := parallel(ctx, r.n, o.creators, func(i int) error {
			if err := r.create(i); err != nil {
				return err
			}
			if r.track != nil {
				ns := nsApps
				if r.namespace != nil {
					ns = r.namespace(i)
				}
				r.track.createdAt(ns+"/"+r.name(i), time.Now())
			}
			created.Add(1)
			return nil
		})
		createDone <- outcome{err, time.Since(start)}
	}()
	var (
		ready     int
		reasons   map[string]int
		createsOK bool
		lastLog   time.Time
	)
	deadline := start.Add(o.readyTimeout)
	for {
		if !createsOK {
			select {
			case out := <-createDone:
				if out.err != nil {
					return res, fmt.Errorf("creating the %s: %w", r.what, out.err)
				}
				res.createSeconds = out.took.Seconds()
				createsOK = true
				logf("%s: all %d %s %s after %s", r.phase, r.n, r.what, r.did, secs(res.createSeconds))
			default:
			}
		}
		n, why, err := r.countReady(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			logf("%s: listing %s: %v", r.phase, r.what, err)
		} else {
			ready, reasons = n, why
			if createsOK && ready == r.n {
				res.allReady = true
				break
			}
		}
		now := time.Now()
		if now.After(deadline) {
			break
		}
		if now.Sub(lastLog) >= 5*time.Second {
			logf("%s: %4d %s, %4d %s, manager RSS %s", r.phase, created.Load(), r.did, ready, r.state, mib(mgr.RSS()))
			lastLog = now
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return res, err
		}
	}
	res.readySeconds = time.Since(start).Seconds()
	res.ready = ready
	if r.track != nil {
		l := r.track.latency(r.what + " " + r.did + " → " + r.state)
		res.latency = &l
		logf("%s: %s", r.phase, l)
	}
	if res.allReady {
		logf("%s: all %d %s %s after %s", r.phase, r.n, r.what, r.state, secs(res.readySeconds))
		return res, nil
	}
	res.notReady = reasons
	if missing := r.n - ready - sum(reasons); missing > 0 {
		res.notReady["(not "+r.did+")"] = missing
	}
	logf("%s: only %d of %d %s %s after %s", r.phase, ready, r.n, r.what, r.state, o.readyTimeout)
	if !createsOK {
		out := <-createDone
		if out.err != nil {
			return res, fmt.Errorf("creating the %s: %w", r.what, out.err)
		}
		res.createSeconds = out.took.Seconds()
	}
	return res, nil
}

// countReady tallies n objects by readiness: how many are Ready, and the others by reason.
func countReady(n int, readyOf func(i int) (bool, string)) (int, map[string]int) {
	ready, reasons := 0, map[string]int{}
	for i := 0; i < n; i++ {
		ok, reason := readyOf(i)
		switch {
		case ok:
			ready++
		case reason == "":
			reasons["(no condition yet)"]++
		default:
			reasons[reason]++
		}
	}
	return ready, reasons
}
