package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// phase3 restarts the manager and counts every upstream call from its start until --restart-window
// after it is ready, against the keep-alives and Cloud refreshes the statuses say fall due.
func phase3(ctx context.Context, c client.Client, sim *harness.Sim, mgr *harness.Manager, o options, res *Results) error {
	logf("phase 3: restarting the manager")
	stopping := time.Now()
	if err := mgr.Stop(); err != nil {
		res.ManagerRestartErr = err.Error()
		logf("phase 3: the manager exited uncleanly: %v", err)
	}
	res.RestartStopSeconds = time.Since(stopping).Seconds()
	// When each session's next keep-alive and each CloudAuthorization's next refresh is due, as the
	// statuses say once the manager has stopped: the ones falling due in the window are legitimate, any
	// more are the restart's.
	nextKeepAlives, err := keepAlivesPlanned(ctx, c, o)
	if err != nil {
		return err
	}
	// When each app's token is due for renewal (the consumers' is their ClusterThingSpaceApp's).
	renewals, err := appRenewals(ctx, c, o)
	if err != nil {
		return err
	}
	var clouds cloudRestart
	if o.clouds > 0 {
		if err := clouds.beforeRestart(ctx, c); err != nil {
			return err
		}
	}
	if err := sim.ResetStats(); err != nil {
		return err
	}
	start := time.Now()
	if err := mgr.Start(ctx); err != nil {
		return err
	}
	readyAt := time.Now()
	// Where a restart's time goes: the first 15 s of the new process.
	o.prof.cpu(ctx, "restart", 15*time.Second)
	res.RestartReadySeconds = readyAt.Sub(start).Seconds()
	logf("phase 3: manager ready after %s; counting upstream calls for %s", secs(res.RestartReadySeconds), o.restartWindow)
	end := readyAt.Add(o.restartWindow)
	for {
		if !res.RestartObserved {
			if expo, err := mgr.Metrics(); err == nil && countSamples(expo, "thingspace_app_ready_status", inBench, 1) >= o.apps &&
				countSamples(expo, "thingspace_m2m_session_ready_status", inBench, 1) >= o.sessions &&
				countSamples(expo, "thingspace_cloud_ready_status", inBench, 1) >= o.clouds &&
				countSamples(expo, "thingspace_app_ready_status", inTenants, 1) >= o.consumers &&
				countSamples(expo, "thingspace_m2m_session_ready_status", inTenants, 1) >= o.consumers {
				res.RestartObserved = true
				res.RestartObservedSecs = time.Since(start).Seconds()
				logf("phase 3: all %d apps, %d sessions, %d clouds and %d consumers of each cluster kind observed Ready again after %s",
					o.apps, o.sessions, o.clouds, o.consumers, secs(res.RestartObservedSecs))
			}
		}
		if o.clouds > 0 {
			clouds.poll(sim, readyAt)
		}
		// Keep watching past the window while the apps are not all observed, within bounds.
		if time.Now().After(end) && (res.RestartObserved || time.Since(readyAt) > max(o.restartWindow, 60*time.Second)) {
			break
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return err
		}
	}
	stats, err := sim.Stats()
	if err != nil {
		return err
	}
	if o.clouds > 0 {
		if err := clouds.count(sim); err != nil {
			return err
		}
	}
	countedTo := time.Now()
	res.RestartUpstreamRoutes = map[string]int{}
	for route, byStatus := range stats {
		n := sum(byStatus)
		if n == 0 {
			continue
		}
		res.RestartUpstreamRoutes[route] = n
		// Keep-alives and Cloud refreshes fall due whatever the restart: they are counted against the
		// ones due instead (and Cloud code exchanges by the simulator's Cloud counts).
		switch route {
		case harness.RouteM2MAccount:
			res.RestartKeepAlives = n
			continue
		case harness.RouteCloudToken:
			continue
		}
		res.RestartUpstreamCalls += n
	}
	res.RestartLogins = sum(stats[harness.RouteM2MLogin])
	res.RestartTokenRequests = sum(stats[harness.RouteToken])
	res.RestartTokenRequestsDue = dueBy(renewals, time.Hour, countedTo)
	res.RestartKeepAlivesPlan = dueBy(nextKeepAlives, o.keepAlive, countedTo)
	if n, err := sim.ActiveM2MSessions(); err == nil {
		res.RestartLiveSessions = n
	}
	logf("phase 3: %d upstream calls besides %d keep-alives (%d due by the statuses); %d live sessions upstream",
		res.RestartUpstreamCalls, res.RestartKeepAlives, res.RestartKeepAlivesPlan, res.RestartLiveSessions)
	if o.clouds > 0 {
		return clouds.afterRestart(ctx, c, o, countedTo, readyAt, res)
	}
	return nil
}

// dueBy counts the timed calls (keep-alives, refreshes) due up to end, each object's from its next
// planned time on (then one every interval; an overdue one counts once). Status times are whole
// seconds, rounded down, so this errs on the high side.
func dueBy(next []time.Time, interval time.Duration, end time.Time) int {
	n := 0
	for _, t := range next {
		if !t.After(end) {
			n += 1 + int(end.Sub(t)/interval)
		}
	}
	return n
}

// keepAlivesPlanned lists the M2MSessions' (and the ClusterM2MSession's) status.nextKeepAliveTime;
// the manager is stopped, so they are final.
func keepAlivesPlanned(ctx context.Context, c client.Client, o options) ([]time.Time, error) {
	var out []time.Time
	if o.sessions > 0 {
		list := &v1alpha1.M2MSessionList{}
		if err := c.List(ctx, list, client.InNamespace(nsApps)); err != nil {
			return nil, fmt.Errorf("listing M2MSessions: %w", err)
		}
		for i := range list.Items {
			if t := list.Items[i].Status.NextKeepAliveTime; t != nil {
				out = append(out, t.Time)
			}
		}
	}
	if o.consumers > 0 {
		cs := &v1alpha1.ClusterM2MSession{}
		if err := c.Get(ctx, client.ObjectKey{Name: clusterUWSName}, cs); err != nil {
			return nil, fmt.Errorf("reading the ClusterM2MSession: %w", err)
		}
		if t := cs.Status.NextKeepAliveTime; t != nil {
			out = append(out, t.Time)
		}
	}
	return out, nil
}

// appRenewals lists the ThingSpaceApps' (and the ClusterThingSpaceApp's) status.renewalTime; the
// manager is stopped, so they are final.
func appRenewals(ctx context.Context, c client.Client, o options) ([]time.Time, error) {
	list := &v1alpha1.ThingSpaceAppList{}
	if err := c.List(ctx, list, client.InNamespace(nsApps)); err != nil {
		return nil, fmt.Errorf("listing ThingSpaceApps: %w", err)
	}
	var out []time.Time
	for i := range list.Items {
		if t := list.Items[i].Status.RenewalTime; t != nil {
			out = append(out, t.Time)
		}
	}
	if o.consumers > 0 {
		ca := &v1alpha1.ClusterThingSpaceApp{}
		if err := c.Get(ctx, client.ObjectKey{Name: clusterAppName}, ca); err != nil {
			return nil, fmt.Errorf("reading the ClusterThingSpaceApp: %w", err)
		}
		if t := ca.Status.RenewalTime; t != nil {
			out = append(out, t.Time)
		}
	}
	return out, nil
}

// inBench reports whether ns is the benchmark's namespace.
func inBench(ns string) bool { return ns == nsApps }

// countSamples counts the samples of metric name whose label namespace satisfies ns and whose value is
// want (of a ready_status family, only condition="True").
func countSamples(exposition, name string, ns func(string) bool, want float64) int {
	n := 0
	for line := range strings.SplitSeq(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		end := strings.LastIndexByte(rest, '}')
		if end < 0 || !ns(parseLabels(rest[:end])["namespace"]) ||
			(strings.Contains(rest[:end], `condition="`) && !strings.Contains(rest[:end], `condition="True"`)) {
			continue
		}
		f := strings.Fields(rest[end+1:])
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil && v == want {
			n++
		}
	}
	return n
}
