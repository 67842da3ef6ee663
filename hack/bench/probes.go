package main

import (
	"context"
	"fmt"
	"math"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// A reconcile that changes nothing, for the kinds with timed upstream calls (keep-alives, Cloud
// refreshes) that go on meanwhile and write what they must: the probe's writes are what is left once
// those calls' own are taken off (per keep-alive no Secret write and one status write; per refresh the
// Secret writes the refresh window measured and one status write).

// budgetNoopTimed: a reconcile that changes nothing while TimedCalls timed calls happen: Secret writes
// ≤ TimedCalls × TimedSecretsEach, status writes ≤ TimedCalls, object writes 0.
const budgetNoopTimed = "none-but-timed"

// noopAnnotate patches an annotation of nobody's onto each object obj(i), i < n.
func noopAnnotate(ctx context.Context, c client.Client, n int, obj func(i int) client.Object) error {
	patch := []byte(`{"metadata":{"annotations":{"bench.example.com/noop":"1"}}}`)
	return parallel(ctx, n, 8, func(i int) error {
		return c.Patch(ctx, obj(i), client.RawPatch(types.MergePatchType, patch))
	})
}

// probeTimed annotates n objects of resource (a reconcile that changes nothing), waits 5 s, and records
// the writes against the timed calls timed counts meanwhile, each allowed secretsEach Secret writes.
func probeTimed(ctx context.Context, c client.Client, a *apiCounter, res *Results, what, resource string, n int,
	obj func(i int) client.Object, timed func() (int, error), secretsEach float64) error {
	if n == 0 {
		return nil
	}
	logf("%s: annotating %d with an annotation of nobody's (a reconcile that changes nothing)", what, n)
	// The timed calls are counted over a window that holds the API server's: counted between its two
	// snapshots (scrapes of its metrics, slow on a loaded machine), they missed refreshes whose writes
	// the snapshots counted (at 100 clouds, 6 refreshes counted while
	// the API server counted 48 Secret and 24 status writes, read as 30 and 18 in excess; counted
	// around them, 39 refreshes and exactly their 117 and 39).
	before, err := timed()
	if err != nil {
		return err
	}
	if err := apiPhase(ctx, a, res, fmt.Sprintf("%s: a reconcile that changes nothing (%d annotated)", what, n), budgetNoopTimed, resource, n, func() error {
		if err := noopAnnotate(ctx, c, n, obj); err != nil {
			return err
		}
		return sleep(ctx, 5*time.Second)
	}); err != nil {
		return err
	}
	after, err := timed()
	if err != nil {
		return err
	}
	p := lastAPI(res)
	p.TimedCalls, p.TimedSecretsEach = after-before, secretsEach
	return nil
}

// noopTimedCheck is the row of a budgetNoopTimed phase.
func noopTimedCheck(p PhaseAPI) Check {
	allowed := int(math.Ceil(float64(p.TimedCalls) * p.TimedSecretsEach))
	return Check{
		Measure: "operator's API writes, " + p.Phase,
		Result: fmt.Sprintf("Secrets %d, status %d, object %d (events %d), with %d timed calls (keep-alives, refreshes) meanwhile",
			p.SecretWrites, p.StatusWrites, p.ObjectWrites, p.EventWrites, p.TimedCalls),
		Target: fmt.Sprintf("only the timed calls': Secrets ≤ %d (%.2f each), status ≤ %d, object 0", allowed, p.TimedSecretsEach, p.TimedCalls),
		Pass:   p.SecretWrites <= allowed && p.StatusWrites <= p.TimedCalls && p.ObjectWrites == 0,
	}
}

// probeSessions: the reconcile that changes nothing on up to --probe M2MSessions.
func probeSessions(ctx context.Context, c client.Client, a *apiCounter, sim *harness.Sim, o options, res *Results) error {
	return probeTimed(ctx, c, a, res, "sessions", "m2msessions", min(o.probe, o.sessions), func(i int) client.Object {
		s := &v1alpha1.M2MSession{}
		s.Namespace, s.Name = nsApps, sessionName(i)
		return s
	}, func() (int, error) {
		st, err := sim.Stats()
		return sum(st[harness.RouteM2MAccount]) + sum(st[harness.RouteM2MLogin]), err
	}, 0)
}

// cloudRefreshSecretWrites are a Cloud refresh's Secret writes: the refresh marker and the answer on the
// grant Secret, the access token on the workload's (README, Benchmark: why three is the least that keeps
// a single-use refresh token safe). A refresh that fails writes two (the marker and its clear).
const cloudRefreshSecretWrites = 3

// probeClouds: the reconcile that changes nothing on up to --probe CloudAuthorizations, refreshing
// meanwhile, each refresh allowed its cloudRefreshSecretWrites. (The refresh window's ratio, 2.95–2.97,
// is less by the refreshes cut by its edges: allowed that, 39 refreshes and their 117 writes missed by one.)
func probeClouds(ctx context.Context, c client.Client, a *apiCounter, sim *harness.Sim, o options, res *Results) error {
	each := float64(cloudRefreshSecretWrites)
	return probeTimed(ctx, c, a, res, "clouds", "cloudauthorizations", min(o.probe, o.clouds), func(i int) client.Object {
		ca := &v1alpha1.CloudAuthorization{}
		ca.Namespace, ca.Name = nsApps, cloudName(i)
		return ca
	}, func() (int, error) {
		st, err := sim.CloudStats()
		return st.Refreshes, err
	}, each)
}
