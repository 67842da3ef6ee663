// Command bench measures thingspace-operator at scale, end to end, with the real processes: envtest's
// kube-apiserver and etcd (KUBEBUILDER_ASSETS, else bin/k8s), the thingspace-sim binary and the manager
// binary, started through test/harness. It is a benchmark, not a test: it prints what it measured next
// to the targets and exits non-zero only when it could not measure, or when a hard check failed (a
// refresh token presented twice or a grant refused: a correctness bug, not a performance miss). A
// missed target is reported, not fatal; no target is a time of the Cloud phase (timings on a shared
// machine are noisy).
//
//	make bench                                  # 1,000 apps, sessions, clouds and consumers of each cluster kind, 300 unrelated 1 MiB Secrets
//	make bench BENCH_ARGS="--apps=200 --sessions=200 --clouds=200 --json"
//	KUBEBUILDER_ASSETS=$PWD/bin/k8s go run ./hack/bench [flags]
//
// The simulator issues one-hour tokens and knows one app key per ThingSpaceApp (passed in a --apps-file),
// so every app needs a token request of its own. The manager runs with leader election off and
// --allow-insecure-endpoints and --allowed-endpoint-hosts=127.0.0.1:* (the simulator is plain http on a
// loopback port).
//
// Phase 1, unrelated Secrets. The manager is started with an empty cluster, and its RSS (VmRSS) is read
// once it has settled: its controller has started its workers (every cache, including the metadata
// cache of all Secrets, has synced) and RSS has stayed within 512 KiB for 3 s. The manager is stopped,
// --unrelated Secrets of 1 MiB each are created in a namespace no ThingSpaceApp uses, and the manager is
// started again (a new process, so its initial LIST includes them) and measured the same way. The
// difference of the two settled RSS values is what the Secrets added; the difference of the peaks
// (VmHWM) is printed beside it. With --labelled N, N of them carry the operator's managed-by label
// (which the full-object Secret cache selects on) but are not the operator's: they must cost as little.
//
// Phase 2, scale. The manager from phase 1 keeps running. --apps credentials Secrets and ThingSpaceApps
// are created by --creators concurrent workers, as fast as the API server takes them. A List of the
// ThingSpaceApps every 250 ms tells when all are Ready=True; the clock starts at the first create. Then
// the simulator's request counts give the token requests (POST /api/ts/v1/oauth2/token) and the
// manager's VmHWM its peak RSS.
//
// Phase 2d, the cluster kinds' consumers (run after phase 2, before 2b, so that no keep-alive or Cloud
// refresh writes the resources whose writes it counts). In --tenants namespaces (the even ones allowed
// by name, the odd ones by a namespace label), --consumers ThingSpaceApps consume one
// ClusterThingSpaceApp (spec.clusterAppRef) and --consumers M2MSessions one ClusterM2MSession
// (spec.clusterSessionRef), whose Secrets live in the manager's --cluster-resource-namespace. A watch
// times each consumer's create→Ready; the simulator's counts must show 1 token request and 1 login for
// the whole phase. Then a reconcile that changes nothing on --probe consumers (0 writes), and a
// refresh request on the ClusterThingSpaceApp: the time until every consumer ThingSpaceApp's status
// shows the new token, and the writes per consumer of both kinds. --consumers=0 skips the phase.
//
// Phase 2b, M2M sessions. --sessions UWS credentials Secrets and M2MSessions are created the same way;
// session i uses ThingSpaceApp i (modulo --apps) and a UWS user of its own (the simulator gets them in
// a --m2m-users-file), and is kept alive every --keepalive-interval with an account read; the
// simulator ends sessions idle for --m2m-idle-timeout. A List every 250 ms tells when all are Ready.
// Then the keep-alives (GET /api/m2m/v1/accounts/{accountName}) over --session-window are counted
// against the plan, sessions × window / interval, and the logins from the first create to the end of
// the window against the minimum, one per session. --sessions=0 skips the phase.
//
// Phase 2c, CloudAuthorizations. --clouds Verizon Cloud apps, one per CloudAuthorization (distinct
// client ids, the worst case), are registered with the simulator through its admin API with the
// manager's callback URL; the simulator's Cloud access tokens live --cloud-access-token-lifetime. The
// credentials Secrets and CloudAuthorizations are created as above, and a List every 250 ms tells when
// every status holds an authorization URL (the operator's first part). Then a bench "person" follows
// every URL with --creators browsers: the simulator's consent page answers at once with its redirect
// (the person's part, timed apart) and the manager's callback exchanges the code and stores the tokens
// (the operator's); a List every 250 ms tells when all are Authorized and Ready. The simulator's Cloud
// counts give the code exchanges, then the refreshes over --cloud-window, as refreshes per object per
// access-token lifetime against what the plan allows (two thirds of the lifetime, up to 10 % earlier by
// jitter, rounded down to the second), and the refresh-token reuses and invalid grants since the first
// create (hard: both must be 0). At the end of the window every Secret's access token is tried on the
// simulator's protected GET /cloud/1/account. --clouds=0 skips the phase.
//
// Phase 3, restart. The simulator's counts are reset, the manager is restarted, and every upstream call
// from its start until --restart-window after it reports ready is counted (tokens are valid for an
// hour and the sessions are in their Secrets, so there should be none but the keep-alives and Cloud
// refreshes that fall due, which are counted apart against the ones due by the statuses'
// nextKeepAliveTime and renewalTime, read once the old manager has exited; Cloud refreshes also over
// the first 5 s after ready, where a refresh storm would show). There must be no code exchange, no
// refresh-token reuse and no invalid grant (hard). The Secrets must carry no refresh marker after the
// SIGTERM, and once a marker left behind would have cost its grant (--upstream-timeout + 5 s after
// ready) every CloudAuthorization must still be Authorized. The manager's thingspace_app_ready_status,
// thingspace_m2m_session_ready_status and thingspace_cloud_ready_status metrics (condition="True")
// tell when it has seen everything again.
//
// Targets depend on the run's size (targets.go): from 10,000 objects on, issue 13's (peak RSS under
// 100 MiB for 10,000 ThingSpaceApps alone, under 200 MiB for all 30,000; the all-Ready rows judge the
// last Ready after the last create, ≤ 5 s); below, the 1,000-run's own (150 MiB, 60 s).
//
// Throughout, the benchmark follows each rollout's objects with a watch (create→state latency per object:
// p50, p99, max, and the last one after the last create) and counts the operator's requests to the API
// server by verb and resource (apiserver_request_total minus its own, apicount.go) phase by phase against
// write budgets (apicost.go; --probe apps get a reconcile that changes nothing and a rotation). The
// manager runs with config/manager's GOMEMLIMIT; --pprof saves heap profiles after each phase and a CPU
// profile of the restart.
//
// Results go to stdout as a Markdown table (or JSON with --json); progress goes to stderr. The logs of
// the manager and the simulator are kept in bin/bench/run-* when a target is missed, on error, or with
// --keep. Ctrl-C stops the manager, the simulator and the control plane before exiting.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/credops/thingspace-operator/hack/internal/interrupt"
)

// Targets.
const (
	targetReady         = 60 * time.Second
	targetPeakRSS       = 150 << 20
	targetUnrelatedRSS  = 10 << 20
	unrelatedSecretSize = 1 << 20 // the API server's limit for a Secret's data
	pollInterval        = 250 * time.Millisecond
)

// Namespaces the benchmark creates.
const (
	nsUnrelated = "bench-unrelated"
	nsApps      = "bench-apps"
)

type options struct {
	apps, unrelated, creators int
	labelled                  int
	sessions                  int
	keepAlive, idleTimeout    time.Duration
	sessionWindow             time.Duration
	clouds                    int
	consumers, tenants        int
	cloudLifetime             time.Duration
	cloudWindow               time.Duration
	readyTimeout              time.Duration
	restartWindow             time.Duration
	json, keep                bool
	pprof                     bool
	probe                     int
	managerArgs               string
	// prof saves heap profiles when pprof is set (run fills it in).
	prof *profiler
}

func main() {
	var o options
	flag.IntVar(&o.apps, "apps", 1000, "ThingSpaceApps to create (each with its own credentials Secret and app key)")
	flag.IntVar(&o.unrelated, "unrelated", 300, "unrelated 1 MiB Secrets to create in phase 1 (0 skips phase 1)")
	flag.IntVar(&o.labelled, "labelled", 0, "how many of the --unrelated Secrets carry the label app.kubernetes.io/managed-by=thingspace-operator (as anyone may set it) without being the operator's: they must cost no more than unrelated ones")
	flag.IntVar(&o.sessions, "sessions", 1000, "M2MSessions to create in phase 2b, each with its own UWS user and credentials Secret (0 skips phase 2b)")
	flag.DurationVar(&o.keepAlive, "keepalive-interval", 30*time.Second, "keepAlive.interval of the M2MSessions")
	flag.DurationVar(&o.idleTimeout, "m2m-idle-timeout", 90*time.Second, "the simulator's M2M session idle timeout")
	flag.DurationVar(&o.sessionWindow, "session-window", 30*time.Second, "how long keep-alives are counted once all sessions are Ready (a multiple of --keepalive-interval, so that every session owes the same number; 0 skips the window, e.g. at 10,000 sessions with a 10m interval)")
	flag.IntVar(&o.consumers, "consumers", 1000, "in phase 2d, consumers of each cluster-scoped kind: ThingSpaceApps with clusterAppRef to one ClusterThingSpaceApp and M2MSessions with clusterSessionRef to one ClusterM2MSession, spread over --tenants namespaces (0 skips phase 2d)")
	flag.IntVar(&o.tenants, "tenants", 100, "tenant namespaces the consumers are spread over (half allowed by name, half by a namespace label)")
	flag.IntVar(&o.clouds, "clouds", 1000, "CloudAuthorizations to create in phase 2c, each with its own Verizon Cloud app and credentials Secret (0 skips phase 2c)")
	flag.DurationVar(&o.cloudLifetime, "cloud-access-token-lifetime", 20*time.Second, "the simulator's Verizon Cloud access-token lifetime (Verizon's: about an hour)")
	flag.DurationVar(&o.cloudWindow, "cloud-window", 40*time.Second, "how long Cloud refreshes are counted once all CloudAuthorizations are Authorized (a multiple of the access-token lifetime; 0 skips the window, e.g. at 10,000 clouds with hour-long tokens)")
	flag.IntVar(&o.creators, "creators", 8, "concurrent creators of Secrets and ThingSpaceApps")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 3*time.Minute, "give up waiting for all apps to be Ready after this long (reported as a miss)")
	flag.DurationVar(&o.restartWindow, "restart-window", 20*time.Second, "how long after the restarted manager is ready upstream calls are counted")
	flag.BoolVar(&o.json, "json", false, "print the results as JSON instead of a Markdown table (the table then goes to stderr)")
	flag.IntVar(&o.probe, "probe", 1000, "after phase 2, how many apps get an annotation of nobody's (a reconcile that must write nothing) and then a refresh request (a rotation: one Secret write, at most one status write), counting the operator's API writes (0 skips)")
	flag.StringVar(&o.managerArgs, "manager-args", "", "extra manager flags, space-separated (experiments, e.g. --max-concurrent-reconciles=20); the results then are not the shipped configuration's")
	flag.BoolVar(&o.pprof, "pprof", false, "serve the manager's pprof on a loopback port and save its heap profile after each phase in the work directory (kept), with the top allocations in the log")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (manager and simulator logs) even when every target is met")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: bench [flags]\n\nBenchmark thingspace-operator with the real control plane, simulator and manager.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || o.apps < 1 || o.unrelated < 0 || o.labelled < 0 || o.labelled > o.unrelated || o.creators < 1 || o.readyTimeout <= 0 || o.restartWindow <= 0 ||
		o.sessions < 0 || o.keepAlive <= 0 || o.idleTimeout <= o.keepAlive || (o.sessionWindow != 0 && o.sessionWindow < o.keepAlive) || o.consumers < 0 || o.tenants < 1 ||
		o.clouds < 0 || o.cloudLifetime < 5*time.Second || (o.cloudWindow != 0 && o.cloudWindow < o.cloudLifetime) {
		flag.Usage()
		os.Exit(2)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go interrupt.CancelOnSignals(cancel,
		func() {
			logf("interrupted: stopping the manager, the simulator and the control plane (Ctrl-C twice more to abandon them)")
		},
		func() {
			logf("still stopping; Ctrl-C once more exits at once and may leave kube-apiserver and etcd running")
		})

	r, err := run(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			logf("interrupted")
			os.Exit(130)
		}
		logf("error: %v", err)
		os.Exit(1)
	}
	if o.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		_ = enc.Encode(r)
		r.writeMarkdown(os.Stderr) // the table too, beside the progress lines
	} else {
		r.writeMarkdown(os.Stdout)
	}
	if !r.HardPass {
		logf("hard failure: a refresh token was sent twice or a grant was refused (see the rows marked hard)")
		os.Exit(1)
	}
}

var started = time.Now()

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %6.1fs  %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}
