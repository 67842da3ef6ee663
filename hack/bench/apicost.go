package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// The operator's API writes per object, phase by phase: creation to Ready, a quiet window, a reconcile
// that changes nothing, a rotation, a restart.

// Write budgets of a phase.
const (
	budgetNone     = "none"
	budgetRotation = "rotation"
	// budgetConsumers: per consumer one Secret write and at most one status write, plus one Secret
	// write of each cluster-scoped object the phase creates or rotates.
	budgetConsumers = "consumers"
	// budgetSessionCreate: budgetRotation, plus at most one write of the object (its logout finalizer).
	budgetSessionCreate = "session-create"
	// budgetKeepAlive: per keep-alive (Objects counts them) no Secret write, at most one status write.
	budgetKeepAlive = "keep-alive"
	// budgetRefresh: per refresh (Objects counts them) exactly one Secret write — issue 13's "per
	// rotation exactly one Secret write" — and at most one status write.
	budgetRefresh = "refresh"
)

// lastAPI is the phase apiPhase recorded last (to set what is known only at its end).
func lastAPI(r *Results) *PhaseAPI { return &r.API[len(r.API)-1] }

// PhaseAPI is what the operator asked of the API server in one part of the run.
type PhaseAPI struct {
	Phase   string `json:"phase"`
	Objects int    `json:"objects"` // the objects the phase is about (per-object ratios divide by it)
	// Resource is the kind's resource (thingspaceapps, ...; several comma-separated): StatusWrites are
	// writes of its status subresource, ObjectWrites of the object itself (metadata, finalizers).
	Resource     string `json:"resource"`
	SecretWrites int    `json:"secret_writes"`
	StatusWrites int    `json:"status_writes"`
	ObjectWrites int    `json:"object_writes"`
	EventWrites  int    `json:"event_writes"`
	Writes       int    `json:"writes"` // every write, all resources
	// Budget is what the phase may write: budgetNone, budgetRotation (per object one Secret write, at
	// most one status write) or "" (reported only).
	Budget string `json:"budget,omitempty"`
	// ClusterObjects: with budgetConsumers, the cluster-scoped objects whose own Secret writes the
	// phase holds (one each).
	ClusterObjects int `json:"cluster_objects,omitempty"`
	// TimedCalls: with budgetNoopTimed, the keep-alives or refreshes meanwhile, each allowed
	// TimedSecretsEach Secret writes and one status write.
	TimedCalls       int            `json:"timed_calls,omitempty"`
	TimedSecretsEach float64        `json:"timed_secrets_each,omitempty"`
	Requests         map[string]int `json:"requests"`
}

func (p PhaseAPI) perObject(n int) string {
	if p.Objects == 0 {
		return strconv.Itoa(n)
	}
	return fmt.Sprintf("%d = %.2f", n, float64(n)/float64(p.Objects))
}

// addAPI records the requests d of a phase about objects of resource.
func (r *Results) addAPI(phase, budget, resource string, objects int, d apiCounts) PhaseAPI {
	p := PhaseAPI{Phase: phase, Budget: budget, Objects: objects, Resource: resource,
		SecretWrites: d.writes("secrets", ""), Writes: d.writes("", ""), Requests: map[string]int{}}
	for _, res := range strings.Split(resource, ",") {
		p.StatusWrites += d.writes(res, "status")
		p.ObjectWrites += d.writes(res, "")
	}
	for k, n := range d {
		if k.resource == "events" && k.write() {
			p.EventWrites += n
		}
		p.Requests[k.String()] = n
	}
	r.API = append(r.API, p)
	logf("API, %s: %s", phase, d)
	return p
}

// apiPhase runs fn and records the operator's requests meanwhile.
func apiPhase(ctx context.Context, a *apiCounter, res *Results, phase, budget, resource string, objects int, fn func() error) error {
	before, err := a.snapshot(ctx)
	if err != nil {
		return err
	}
	if err := fn(); err != nil {
		return err
	}
	after, err := a.snapshot(ctx)
	if err != nil {
		return err
	}
	res.addAPI(phase, budget, resource, objects, after.since(before))
	return nil
}

// mark starts counting the operator's requests; the function it returns records them since, as
// apiPhase does (for phases that are not one function).
func (a *apiCounter) mark(ctx context.Context, res *Results) (func(phase, budget, resource string, objects int) error, error) {
	before, err := a.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return func(phase, budget, resource string, objects int) error {
		after, err := a.snapshot(ctx)
		if err != nil {
			return err
		}
		res.addAPI(phase, budget, resource, objects, after.since(before))
		return nil
	}, nil
}

// apiConsumerPhase is apiPhase with budgetConsumers, clusterObjects writing a Secret each besides.
func apiConsumerPhase(ctx context.Context, a *apiCounter, res *Results, phase, resource string, objects, clusterObjects int, fn func() error) error {
	if err := apiPhase(ctx, a, res, phase, budgetConsumers, resource, objects, fn); err != nil {
		return err
	}
	res.API[len(res.API)-1].ClusterObjects = clusterObjects
	return nil
}

// quiet waits until the operator's writes to resource have not changed for still (at most limit).
func (a *apiCounter) quiet(ctx context.Context, resource string, still, limit time.Duration) error {
	last, since, deadline := -1, time.Now(), time.Now().Add(limit)
	for time.Now().Before(deadline) {
		s, err := a.snapshot(ctx)
		if err != nil {
			return err
		}
		if n := s.writes(resource, ""); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= still {
			return nil
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// probeApps measures, on the first n apps (all Ready, tokens an hour long), the writes of a quiet
// window, of a reconcile that changes nothing (an annotation of nobody's) and of a rotation (the
// refresh-requested annotation: one token request, one Secret write, at most one status write each).
func probeApps(ctx context.Context, c client.Client, a *apiCounter, sim *harness.Sim, n int, res *Results) error {
	if n == 0 {
		return nil
	}
	logf("phase 2: API writes in a 10 s quiet window")
	if err := apiPhase(ctx, a, res, "apps: 10 s quiet window", budgetNone, "thingspaceapps", 0, func() error { return sleep(ctx, 10*time.Second) }); err != nil {
		return err
	}
	annotate := func(key, value string) error {
		patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, key, value)
		return parallel(ctx, n, 8, func(i int) error {
			app := &v1alpha1.ThingSpaceApp{}
			app.Namespace, app.Name = nsApps, appName(i)
			return c.Patch(ctx, app, client.RawPatch(types.MergePatchType, patch))
		})
	}
	logf("phase 2: annotating %d apps with an annotation of nobody's (a reconcile that changes nothing)", n)
	if err := apiPhase(ctx, a, res, fmt.Sprintf("apps: a reconcile that changes nothing (%d apps annotated)", n), budgetNone, "thingspaceapps", n, func() error {
		if err := annotate("bench.example.com/noop", "1"); err != nil {
			return err
		}
		return sleep(ctx, 5*time.Second)
	}); err != nil {
		return err
	}
	logf("phase 2: asking %d apps for a refresh (a rotation each)", n)
	before, err := sim.Stats()
	if err != nil {
		return err
	}
	return apiPhase(ctx, a, res, fmt.Sprintf("apps: a rotation (refresh-requested on %d apps)", n), budgetRotation, "thingspaceapps", n, func() error {
		if err := annotate(v1alpha1.RefreshRequestedAnnotation, "bench-"+randHex(4)); err != nil {
			return err
		}
		err := harness.WaitFor(ctx, 2*time.Minute, 250*time.Millisecond, func() (bool, error) {
			now, err := sim.Stats()
			return err == nil && sum(now[harness.RouteToken])-sum(before[harness.RouteToken]) >= n, nil
		})
		if err != nil {
			logf("phase 2: not every requested refresh reached the simulator: %v", err)
		}
		if err := sleep(ctx, 5*time.Second); err != nil {
			return err
		}
		after, err := sim.Stats()
		if err == nil {
			res.RotationTokenRequests = sum(after[harness.RouteToken]) - sum(before[harness.RouteToken])
		}
		return err
	})
}

// apiChecks are the results table's rows about API writes.
func apiChecks(r *Results) []Check {
	var out []Check
	for _, p := range r.API {
		detail := fmt.Sprintf("Secrets %s, status %s, object %s; events %s", p.perObject(p.SecretWrites), p.perObject(p.StatusWrites),
			p.perObject(p.ObjectWrites), p.perObject(p.EventWrites))
		switch p.Budget {
		case budgetNone:
			out = append(out, Check{
				Measure: "operator's API writes, " + p.Phase,
				Result:  fmt.Sprintf("%d (%s)", p.Writes, detail),
				Target:  "0",
				Pass:    p.Writes == 0,
			})
		case budgetNoopTimed:
			out = append(out, noopTimedCheck(p))
		case budgetConsumers:
			out = append(out, Check{
				Measure: "operator's API writes per consumer, " + p.Phase,
				Result:  detail,
				Target:  fmt.Sprintf("Secrets 1 (+%d of the cluster objects), status ≤ 1, object 0", p.ClusterObjects),
				Pass:    p.SecretWrites >= p.Objects && p.SecretWrites <= p.Objects+p.ClusterObjects && p.StatusWrites <= p.Objects && p.ObjectWrites == 0,
			})
		case budgetSessionCreate:
			out = append(out, Check{
				Measure: "operator's API writes per object, " + p.Phase,
				Result:  detail,
				Target:  "Secrets 1, status ≤ 1, object ≤ 1 (the logout finalizer)",
				Pass:    p.SecretWrites == p.Objects && p.StatusWrites <= p.Objects && p.ObjectWrites <= p.Objects,
			})
		case budgetKeepAlive:
			out = append(out, Check{
				Measure: "operator's API writes per keep-alive, " + p.Phase,
				Result:  detail,
				Target:  "Secrets 0, status ≤ 1, object 0",
				Pass:    p.Objects > 0 && p.SecretWrites == 0 && p.StatusWrites <= p.Objects && p.ObjectWrites == 0,
			})
		case budgetRefresh:
			out = append(out, Check{
				Measure: "operator's API writes per refresh, " + p.Phase,
				Result:  detail,
				Target:  "Secrets 1, status ≤ 1, object 0",
				Pass:    p.Objects > 0 && p.SecretWrites == p.Objects && p.StatusWrites <= p.Objects && p.ObjectWrites == 0,
			})
		case budgetRotation:
			out = append(out, Check{
				Measure: "operator's API writes per object, " + p.Phase,
				Result:  detail,
				Target:  "Secrets 1, status ≤ 1, object 0",
				Pass:    p.SecretWrites == p.Objects && p.StatusWrites <= p.Objects && p.ObjectWrites == 0,
			})
		default:
			out = append(out, Check{
				Measure: "operator's API writes, " + p.Phase,
				Result:  fmt.Sprintf("%d (%s)", p.Writes, detail),
				Target:  "reported",
				Pass:    true,
			})
		}
	}
	return out
}
