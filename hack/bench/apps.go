package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// phase2 creates --apps credentials Secrets and ThingSpaceApps, waits until all are Ready, and counts
// the token requests and the manager's peak RSS.
func appName(i int) string { return fmt.Sprintf("app-%04d", i) }

func phase2(ctx context.Context, c client.WithWatch, sim *harness.Sim, mgr *harness.Manager, o options,
	keys, secrets []string, res *Results) error {
	if err := createNamespace(ctx, c, nsApps); err != nil {
		return err
	}
	logf("phase 2: creating %d credentials Secrets and ThingSpaceApps with %d creators", o.apps, o.creators)

	tr, err := track(ctx, c, &v1alpha1.ThingSpaceAppList{}, func(o runtime.Object) (bool, string) {
		return harness.Ready(o.(*v1alpha1.ThingSpaceApp))
	})
	if err != nil {
		return err
	}
	out, err := runRollout(ctx, mgr, o, rollout{
		phase: "phase 2", what: "ThingSpaceApps", n: o.apps, track: tr, name: appName,
		create: func(i int) error {
			creds := fmt.Sprintf("creds-%04d", i)
			if err := createSecret(ctx, c, creds, map[string]string{v1alpha1.CredentialsKeyKey: keys[i], v1alpha1.CredentialsKeySecret: secrets[i]}); err != nil {
				return err
			}
			return create(ctx, c, harness.NewApp(nsApps, appName(i), sim.URL, creds, fmt.Sprintf("token-%04d", i)))
		},
	})
	if err != nil {
		return err
	}
	res.CreateSeconds, res.AllReady, res.AllReadySeconds, res.ReadyCount = out.createSeconds, out.allReady, out.readySeconds, out.ready
	res.addLatency(out.latency)
	if !out.allReady {
		res.NotReadyReasons = out.notReady
	}

	// Let stragglers (a second reconcile, a late retry) land before counting.
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	stats, err := sim.Stats()
	if err != nil {
		return err
	}
	res.TokenByStatus = stats[harness.RouteToken]
	if res.TokenByStatus == nil {
		res.TokenByStatus = map[string]int{}
	}
	res.TokenRequests = sum(res.TokenByStatus)
	for route, byStatus := range stats {
		if route != harness.RouteToken {
			if res.OtherUpstream == nil {
				res.OtherUpstream = map[string]int{}
			}
			res.OtherUpstream[route] = sum(byStatus)
		}
	}
	res.PeakRSSBytes, res.RSSAfterBytes, res.HeapAfterBytes = readMem(mgr)
	res.RSSFileAfterBytes = mgr.FileRSS()
	res.ManagerLogErrors = strings.Count(mgr.Logs(), `"level":"error"`)
	logf("phase 2: %d token requests (%s); manager peak RSS %s (the executable's file-backed pages: %s of its RSS now)",
		res.TokenRequests, formatCounts(res.TokenByStatus), mib(res.PeakRSSBytes), mib(res.RSSFileAfterBytes))
	return nil
}
