// Command bench measures thingspace-operator at scale, end to end, with the real processes: envtest's
// kube-apiserver and etcd (KUBEBUILDER_ASSETS, else bin/k8s), the thingspace-sim binary and the manager
// binary, started through test/harness. It is a benchmark, not a test: it prints what it measured next
// to the targets and exits non-zero only when it could not measure, or when a hard check failed (a
// refresh token presented twice or a grant refused: a correctness bug, not a performance miss). A
// missed target is reported, not fatal; no target is a time of the Cloud phase (timings on a shared
// machine are noisy).
//
//	make bench                                  # 1,000 apps, sessions and clouds, 300 unrelated 1 MiB Secrets
//	make bench BENCH_ARGS="--apps=200 --sessions=200 --clouds=200 --json"
//	KUBEBUILDER_ASSETS=$PWD/bin/k8s go run ./hack/bench [flags]
//
// The simulator issues one-hour tokens and knows one app key per ThingSpaceApp (passed in a --apps-file),
// so every app needs a token request of its own. The manager runs with leader election off and
// --allow-insecure-endpoints (the simulator is plain http).
//
// Phase 1, unrelated Secrets. The manager is started with an empty cluster, and its RSS (VmRSS) is read
// once it has settled: its controller has started its workers (every cache, including the metadata
// cache of all Secrets, has synced) and RSS has stayed within 512 KiB for 3 s. The manager is stopped,
// --unrelated Secrets of 1 MiB each are created in a namespace no ThingSpaceApp uses, and the manager is
// started again (a new process, so its initial LIST includes them) and measured the same way. The
// difference of the two settled RSS values is what the Secrets added; the difference of the peaks
// (VmHWM) is printed beside it.
//
// Phase 2, scale. The manager from phase 1 keeps running. --apps credentials Secrets and ThingSpaceApps
// are created by --creators concurrent workers, as fast as the API server takes them. A List of the
// ThingSpaceApps every 250 ms tells when all are Ready=True; the clock starts at the first create. Then
// the simulator's request counts give the token requests (POST /api/ts/v1/oauth2/token) and the
// manager's VmHWM its peak RSS.
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
// ready) every CloudAuthorization must still be Authorized. The manager's thingspace_app_ready,
// thingspace_m2m_session_ready and thingspace_cloud_ready metrics tell when it has seen everything again.
//
// Results go to stdout as a Markdown table (or JSON with --json); progress goes to stderr. The logs of
// the manager and the simulator are kept in bin/bench/run-* when a target is missed, on error, or with
// --keep. Ctrl-C stops the manager, the simulator and the control plane before exiting.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
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
	sessions                  int
	keepAlive, idleTimeout    time.Duration
	sessionWindow             time.Duration
	clouds                    int
	cloudLifetime             time.Duration
	cloudWindow               time.Duration
	readyTimeout              time.Duration
	restartWindow             time.Duration
	json, keep                bool
}

func main() {
	var o options
	flag.IntVar(&o.apps, "apps", 1000, "ThingSpaceApps to create (each with its own credentials Secret and app key)")
	flag.IntVar(&o.unrelated, "unrelated", 300, "unrelated 1 MiB Secrets to create in phase 1 (0 skips phase 1)")
	flag.IntVar(&o.sessions, "sessions", 1000, "M2MSessions to create in phase 2b, each with its own UWS user and credentials Secret (0 skips phase 2b)")
	flag.DurationVar(&o.keepAlive, "keepalive-interval", 30*time.Second, "keepAlive.interval of the M2MSessions")
	flag.DurationVar(&o.idleTimeout, "m2m-idle-timeout", 90*time.Second, "the simulator's M2M session idle timeout")
	flag.DurationVar(&o.sessionWindow, "session-window", 60*time.Second, "how long keep-alives are counted once all sessions are Ready (a multiple of --keepalive-interval, so that every session owes the same number)")
	flag.IntVar(&o.clouds, "clouds", 1000, "CloudAuthorizations to create in phase 2c, each with its own Verizon Cloud app and credentials Secret (0 skips phase 2c)")
	flag.DurationVar(&o.cloudLifetime, "cloud-access-token-lifetime", 20*time.Second, "the simulator's Verizon Cloud access-token lifetime (Verizon's: about an hour)")
	flag.DurationVar(&o.cloudWindow, "cloud-window", 60*time.Second, "how long Cloud refreshes are counted once all CloudAuthorizations are Authorized (a multiple of the access-token lifetime)")
	flag.IntVar(&o.creators, "creators", 8, "concurrent creators of Secrets and ThingSpaceApps")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 3*time.Minute, "give up waiting for all apps to be Ready after this long (reported as a miss)")
	flag.DurationVar(&o.restartWindow, "restart-window", 20*time.Second, "how long after the restarted manager is ready upstream calls are counted")
	flag.BoolVar(&o.json, "json", false, "print the results as JSON instead of a Markdown table")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (manager and simulator logs) even when every target is met")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: bench [flags]\n\nBenchmark thingspace-operator with the real control plane, simulator and manager.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || o.apps < 1 || o.unrelated < 0 || o.creators < 1 || o.readyTimeout <= 0 || o.restartWindow <= 0 ||
		o.sessions < 0 || o.keepAlive <= 0 || o.idleTimeout <= o.keepAlive || o.sessionWindow < o.keepAlive ||
		o.clouds < 0 || o.cloudLifetime < 5*time.Second || o.cloudWindow < o.cloudLifetime {
		flag.Usage()
		os.Exit(2)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go onSignals(cancel)

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
	} else {
		r.writeMarkdown(os.Stdout)
	}
	if !r.HardPass {
		logf("hard failure: a refresh token was sent twice or a grant was refused (see the rows marked hard)")
		os.Exit(1)
	}
}

// onSignals cancels the run on the first SIGINT or SIGTERM, so that everything is stopped in order. A
// third one exits at once (kube-apiserver and etcd may then be left running).
func onSignals(cancel context.CancelFunc) {
	ch := make(chan os.Signal, 3)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	for n := 1; ; n++ {
		<-ch
		switch n {
		case 1:
			logf("interrupted: stopping the manager, the simulator and the control plane (Ctrl-C twice more to abandon them)")
			cancel()
		case 2:
			logf("still stopping; Ctrl-C once more exits at once and may leave kube-apiserver and etcd running")
		default:
			os.Exit(130)
		}
	}
}

var started = time.Now()

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %6.1fs  %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}

// Results is what the benchmark measured; it is also the --json output.
type Results struct {
	Apps             int `json:"apps"`
	UnrelatedSecrets int `json:"unrelated_secrets"`

	// Phase 1.
	RSSBaselineBytes      int64   `json:"rss_baseline_bytes,omitempty"`       // settled VmRSS without the unrelated Secrets
	RSSWithUnrelatedBytes int64   `json:"rss_with_unrelated_bytes,omitempty"` // settled VmRSS with them (a fresh process)
	UnrelatedAddedBytes   int64   `json:"unrelated_added_bytes"`              // the difference
	HWMBaselineBytes      int64   `json:"hwm_baseline_bytes,omitempty"`       // VmHWM of the first process when it was measured
	HWMWithUnrelatedBytes int64   `json:"hwm_with_unrelated_bytes,omitempty"` // VmHWM of the second
	HeapBaselineBytes     int64   `json:"heap_inuse_baseline_bytes,omitempty"`
	HeapWithUnrelated     int64   `json:"heap_inuse_with_unrelated_bytes,omitempty"`
	UnrelatedCreateSecs   float64 `json:"unrelated_create_seconds,omitempty"`

	// Phase 2.
	CreateSeconds     float64        `json:"create_seconds"`    // first create → last create answered
	AllReady          bool           `json:"all_ready"`         // all apps Ready=True before --ready-timeout
	ReadyCount        int            `json:"ready_count"`       // Ready=True at the end of the wait
	AllReadySeconds   float64        `json:"all_ready_seconds"` // first create → all Ready=True (or the timeout)
	NotReadyReasons   map[string]int `json:"not_ready_reasons,omitempty"`
	TokenRequests     int            `json:"token_requests"` // POST /api/ts/v1/oauth2/token, any status
	TokenByStatus     map[string]int `json:"token_requests_by_status"`
	OtherUpstream     map[string]int `json:"other_upstream_requests,omitempty"` // every other /api route
	PeakRSSBytes      int64          `json:"peak_rss_bytes"`                    // VmHWM of the manager after phase 2
	RSSAfterBytes     int64          `json:"rss_after_bytes"`                   // VmRSS after phase 2
	HeapAfterBytes    int64          `json:"heap_inuse_after_bytes,omitempty"`
	ManagerLogErrors  int            `json:"manager_log_errors"` // "level":"error" lines in the manager's log
	ManagerRestartErr string         `json:"manager_restart_error,omitempty"`

	// Phase 2b.
	Sessions                int            `json:"sessions"`
	KeepAliveSeconds        float64        `json:"keepalive_interval_seconds,omitempty"`
	SessionCreateSeconds    float64        `json:"session_create_seconds,omitempty"` // first create → last create answered
	SessionsAllReady        bool           `json:"sessions_all_ready,omitempty"`
	SessionsReadyCount      int            `json:"sessions_ready_count,omitempty"`
	SessionsReadySeconds    float64        `json:"sessions_all_ready_seconds,omitempty"` // first create → all Ready=True
	SessionsNotReady        map[string]int `json:"sessions_not_ready_reasons,omitempty"`
	Logins                  map[string]int `json:"logins_by_status,omitempty"` // first create → end of the window
	WindowLogins            int            `json:"window_logins"`              // during the keep-alive window
	KeepAlives              int            `json:"keepalives"`                 // in the window, any status
	KeepAlivesOK            int            `json:"keepalives_ok"`
	KeepAlivesPlanned       int            `json:"keepalives_planned"` // sessions × window / interval
	KeepAliveWindowSeconds  float64        `json:"keepalive_window_seconds,omitempty"`
	LiveSessionsAfterWindow int            `json:"live_sessions_after_window"` // the simulator's count
	SessionsPeakRSSBytes    int64          `json:"sessions_peak_rss_bytes,omitempty"`
	SessionsRSSAfterBytes   int64          `json:"sessions_rss_after_bytes,omitempty"`
	SessionsHeapAfterBytes  int64          `json:"sessions_heap_inuse_after_bytes,omitempty"`
	SessionsLogErrors       int            `json:"sessions_manager_log_errors"` // "level":"error" lines added in phase 2b

	// Phase 2c.
	Clouds                    int            `json:"clouds"`
	CloudLifetimeSeconds      float64        `json:"cloud_access_token_lifetime_seconds,omitempty"`
	CloudCreateSeconds        float64        `json:"cloud_create_seconds,omitempty"`     // first create → last create answered
	CloudAllURLs              bool           `json:"cloud_all_urls,omitempty"`           // every status had an authorization URL before --ready-timeout
	CloudURLsSeconds          float64        `json:"cloud_urls_seconds,omitempty"`       // first create → an authorization URL in every status
	CloudConsentSeconds       float64        `json:"cloud_consent_seconds,omitempty"`    // first URL opened → last callback page received
	CloudAuthorizeLegMillis   float64        `json:"cloud_authorize_leg_ms,omitempty"`   // per consent, mean: the consent page (the person's part)
	CloudCallbackLegMillis    float64        `json:"cloud_callback_leg_ms,omitempty"`    // per consent, mean: the manager's callback (the operator's)
	CloudAuthorizedSeconds    float64        `json:"cloud_authorized_seconds,omitempty"` // first URL opened → all Authorized and Ready
	CloudTotalSeconds         float64        `json:"cloud_total_seconds,omitempty"`      // first create → all Authorized and Ready
	CloudAllAuthorized        bool           `json:"cloud_all_authorized,omitempty"`
	CloudAuthorizedCount      int            `json:"cloud_authorized_count,omitempty"`
	CloudNotAuthorized        map[string]int `json:"cloud_not_authorized_reasons,omitempty"`
	CloudCallbackPages        map[string]int `json:"cloud_callback_pages_by_status,omitempty"`
	CloudCodesIssued          int            `json:"cloud_codes_issued"`
	CloudCodeExchanges        int            `json:"cloud_code_exchanges"`
	CloudCodeReuses           int            `json:"cloud_code_reuses"`
	CloudConsentRefreshes     int            `json:"cloud_refreshes_before_window"` // first create → start of the refresh window
	CloudRefreshes            int            `json:"cloud_refreshes"`               // in the refresh window
	CloudWindowSeconds        float64        `json:"cloud_window_seconds,omitempty"`
	CloudRefreshesPerLifetime float64        `json:"cloud_refreshes_per_object_per_lifetime"`
	CloudRefreshTokenReuses   int            `json:"cloud_refresh_token_reuses"` // first create → end of the window
	CloudInvalidGrants        int            `json:"cloud_invalid_grants"`
	CloudLiveRefreshTokens    int            `json:"cloud_live_refresh_tokens"` // the simulator's count at the end of the window
	CloudTokenByStatus        map[string]int `json:"cloud_token_requests_by_status,omitempty"`
	CloudReadyAfterWindow     int            `json:"cloud_ready_after_window"` // Authorized and Ready at the end of the window
	CloudNotReadyAfterWindow  map[string]int `json:"cloud_not_ready_after_window_reasons,omitempty"`
	CloudTokensAccepted       int            `json:"cloud_tokens_accepted"` // the Secrets' access tokens GET /cloud/1/account accepted
	CloudPeakRSSBytes         int64          `json:"cloud_peak_rss_bytes,omitempty"`
	CloudRSSAfterBytes        int64          `json:"cloud_rss_after_bytes,omitempty"`
	CloudHeapAfterBytes       int64          `json:"cloud_heap_inuse_after_bytes,omitempty"`
	CloudLogErrors            int            `json:"cloud_manager_log_errors"` // "level":"error" lines added in phase 2c

	// Phase 3.
	RestartStopSeconds    float64        `json:"restart_stop_seconds"`         // SIGTERM → the old process gone
	RestartReadySeconds   float64        `json:"restart_ready_seconds"`        // process start → /readyz 200
	RestartObserved       bool           `json:"restart_all_observed"`         // thingspace_app_ready == 1 for all apps
	RestartObservedSecs   float64        `json:"restart_all_observed_seconds"` // process start → all observed
	RestartUpstreamCalls  int            `json:"restart_upstream_calls"`       // from process start to ready + window, keep-alives aside
	RestartLogins         int            `json:"restart_logins"`
	RestartKeepAlives     int            `json:"restart_keepalives"`
	RestartKeepAlivesPlan int            `json:"restart_keepalives_due"` // due by the statuses' nextKeepAliveTime
	RestartLiveSessions   int            `json:"restart_live_sessions"`  // the simulator's count at the end
	RestartUpstreamRoutes map[string]int `json:"restart_upstream_by_route,omitempty"`
	RestartWindowSeconds  float64        `json:"restart_window_seconds"`
	// Verizon Cloud, from process start to ready + window; due: by the statuses' renewalTime.
	RestartCloudRefreshes        int            `json:"restart_cloud_refreshes"`
	RestartCloudRefreshesDue     int            `json:"restart_cloud_refreshes_due"`
	RestartCloudEarly            int            `json:"restart_cloud_refreshes_early"` // process start → ready + 5 s
	RestartCloudEarlyDue         int            `json:"restart_cloud_refreshes_early_due"`
	RestartCodeExchanges         int            `json:"restart_code_exchanges"`
	RestartRefreshTokenReuses    int            `json:"restart_refresh_token_reuses"`
	RestartInvalidGrants         int            `json:"restart_invalid_grants"`
	RestartRefreshMarkers        int            `json:"restart_refresh_markers"`       // Secrets marked as being refreshed after the SIGTERM
	RestartCloudsUnauthorized    int            `json:"restart_clouds_not_authorized"` // once a marker left behind would have cost the grant
	RestartCloudsUnauthorizedWhy map[string]int `json:"restart_clouds_not_authorized_reasons,omitempty"`

	Checks []Check `json:"checks"`
	Pass   bool    `json:"pass"`
	// HardPass is false when a hard check failed (a correctness bug rather than a missed target); the
	// benchmark then exits 1.
	HardPass bool `json:"hard_pass"`

	WorkDir string `json:"work_dir,omitempty"` // kept logs
}

// Check is one line of the results table.
type Check struct {
	Measure string `json:"measure"`
	Result  string `json:"result"`
	Target  string `json:"target"`
	Pass    bool   `json:"pass"`
	// Hard marks a correctness check: when it fails the benchmark exits 1.
	Hard bool `json:"hard,omitempty"`
}

func (r *Results) evaluate() {
	r.Checks = []Check{
		{
			Measure: fmt.Sprintf("all %d ThingSpaceApps Ready (first create → Ready=True)", r.Apps),
			Result:  readyResult(r),
			Target:  fmt.Sprintf("< %.0f s", targetReady.Seconds()),
			Pass:    r.AllReady && r.AllReadySeconds < targetReady.Seconds(),
		},
		{
			Measure: "token requests (" + harness.RouteToken + ")",
			Result:  strconv.Itoa(r.TokenRequests),
			Target:  "exactly " + strconv.Itoa(r.Apps),
			Pass:    r.TokenRequests == r.Apps,
		},
		{
			Measure: "manager peak RSS (VmHWM)",
			Result:  mib(r.PeakRSSBytes),
			Target:  fmt.Sprintf("< %d MiB", targetPeakRSS>>20),
			Pass:    r.PeakRSSBytes > 0 && r.PeakRSSBytes < targetPeakRSS,
		},
	}
	if r.UnrelatedSecrets > 0 {
		r.Checks = append(r.Checks, Check{
			Measure: fmt.Sprintf("RSS added by %d unrelated 1 MiB Secrets (settled)", r.UnrelatedSecrets),
			Result:  fmt.Sprintf("%s (%s → %s)", signedMiB(r.UnrelatedAddedBytes), mib(r.RSSBaselineBytes), mib(r.RSSWithUnrelatedBytes)),
			Target:  fmt.Sprintf("< %d MiB", targetUnrelatedRSS>>20),
			Pass:    r.UnrelatedAddedBytes < targetUnrelatedRSS,
		})
	}
	if r.Sessions > 0 {
		logins := sum(r.Logins)
		r.Checks = append(r.Checks,
			Check{
				Measure: fmt.Sprintf("all %d M2MSessions Ready (first create → Ready=True)", r.Sessions),
				Result:  sessionsReadyResult(r),
				Target:  fmt.Sprintf("< %.0f s", targetSessionsReady.Seconds()),
				Pass:    r.SessionsAllReady && r.SessionsReadySeconds < targetSessionsReady.Seconds(),
			},
			Check{
				Measure: fmt.Sprintf("UWS logins (%s), first create → end of the keep-alive window", harness.RouteM2MLogin),
				Result:  strconv.Itoa(logins),
				Target:  "exactly " + strconv.Itoa(r.Sessions),
				Pass:    logins == r.Sessions,
			},
			Check{
				Measure: fmt.Sprintf("keep-alives in %s at a %s interval (%s)", secs(r.KeepAliveWindowSeconds),
					time.Duration(r.KeepAliveSeconds*float64(time.Second)), harness.RouteM2MAccount),
				Result: fmt.Sprintf("%d (%d answered 200)", r.KeepAlives, r.KeepAlivesOK),
				Target: fmt.Sprintf("%d ± %.0f%%", r.KeepAlivesPlanned, keepAliveTolerance*100),
				Pass: r.KeepAlivesOK == r.KeepAlives &&
					math.Abs(float64(r.KeepAlives-r.KeepAlivesPlanned)) <= keepAliveTolerance*float64(r.KeepAlivesPlanned),
			},
			Check{
				Measure: fmt.Sprintf("manager peak RSS (VmHWM) with %d M2MSessions", r.Sessions),
				Result:  mib(r.SessionsPeakRSSBytes),
				Target:  fmt.Sprintf("< %d MiB", targetPeakRSS>>20),
				Pass:    r.SessionsPeakRSSBytes > 0 && r.SessionsPeakRSSBytes < targetPeakRSS,
			},
		)
	}
	if r.Clouds > 0 {
		r.Checks = append(r.Checks, cloudChecks(r)...)
	}
	window := time.Duration(r.RestartWindowSeconds * float64(time.Second))
	restartCalls := Check{
		Measure: fmt.Sprintf("upstream calls after a restart (start → ready + %s)", window),
		Result:  strconv.Itoa(r.RestartUpstreamCalls),
		Target:  "0",
		Pass:    r.RestartUpstreamCalls == 0,
	}
	switch {
	case r.Sessions > 0 && r.Clouds > 0:
		restartCalls.Measure += ", keep-alives and Cloud token calls aside"
	case r.Sessions > 0:
		restartCalls.Measure += ", keep-alives aside"
	case r.Clouds > 0:
		restartCalls.Measure += ", Cloud token calls aside"
	}
	r.Checks = append(r.Checks, restartCalls)
	if r.Sessions > 0 {
		r.Checks = append(r.Checks,
			Check{
				Measure: fmt.Sprintf("UWS logins after a restart (start → ready + %s)", window),
				Result:  strconv.Itoa(r.RestartLogins),
				Target:  "0",
				Pass:    r.RestartLogins == 0,
			},
			Check{
				Measure: fmt.Sprintf("keep-alives after a restart (start → ready + %s)", window),
				Result:  strconv.Itoa(r.RestartKeepAlives),
				Target:  fmt.Sprintf("≤ %d (the ones due)", dueLimit(r.RestartKeepAlivesPlan)),
				Pass:    r.RestartKeepAlives <= dueLimit(r.RestartKeepAlivesPlan),
			},
		)
	}
	if r.Clouds > 0 {
		r.Checks = append(r.Checks, cloudRestartChecks(r, window)...)
	}
	r.Pass, r.HardPass = true, true
	for _, c := range r.Checks {
		r.Pass = r.Pass && c.Pass
		r.HardPass = r.HardPass && (c.Pass || !c.Hard)
	}
}

// dueLimit is how many timed calls (keep-alives, refreshes) may be sent in the restart window when due
// are due by the statuses, with the tolerance of the steady state. A restart must not send one for
// every object at once.
func dueLimit(due int) int {
	return int(math.Ceil(float64(due) * (1 + keepAliveTolerance)))
}

func sessionsReadyResult(r *Results) string {
	if !r.SessionsAllReady {
		return fmt.Sprintf("%d/%d after %s", r.SessionsReadyCount, r.Sessions, secs(r.SessionsReadySeconds))
	}
	return secs(r.SessionsReadySeconds)
}

func readyResult(r *Results) string {
	if !r.AllReady {
		return fmt.Sprintf("%d/%d after %s", r.ReadyCount, r.Apps, secs(r.AllReadySeconds))
	}
	return secs(r.AllReadySeconds)
}

func (r *Results) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "\n| measure | result | target | |\n|---|---|---|---|\n")
	for _, c := range r.Checks {
		verdict := "MISS"
		if c.Pass {
			verdict = "PASS"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", c.Measure, c.Result, c.Target, verdict)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- creates: %d Secrets + %d ThingSpaceApps answered in %s\n", r.Apps, r.Apps, secs(r.CreateSeconds))
	fmt.Fprintf(w, "- token requests by status: %s", formatCounts(r.TokenByStatus))
	if len(r.OtherUpstream) > 0 {
		fmt.Fprintf(w, "; other upstream calls: %s", formatCounts(r.OtherUpstream))
	}
	fmt.Fprintln(w)
	if len(r.NotReadyReasons) > 0 {
		fmt.Fprintf(w, "- not Ready at the end of the wait, by reason: %s\n", formatCounts(r.NotReadyReasons))
	}
	fmt.Fprintf(w, "- manager after phase 2: RSS %s, Go heap in use %s; %d error lines in its log\n",
		mib(r.RSSAfterBytes), mib(r.HeapAfterBytes), r.ManagerLogErrors)
	if r.UnrelatedSecrets > 0 {
		fmt.Fprintf(w, "- unrelated Secrets: peak RSS (VmHWM) %s → %s (%s); Go heap in use %s → %s; created in %s\n",
			mib(r.HWMBaselineBytes), mib(r.HWMWithUnrelatedBytes), signedMiB(r.HWMWithUnrelatedBytes-r.HWMBaselineBytes),
			mib(r.HeapBaselineBytes), mib(r.HeapWithUnrelated), secs(r.UnrelatedCreateSecs))
	}
	if r.Sessions > 0 {
		fmt.Fprintf(w, "- sessions: %d UWS credentials Secrets + %d M2MSessions answered in %s; logins by status: %s; %d logins during the keep-alive window; %d live sessions upstream after it\n",
			r.Sessions, r.Sessions, secs(r.SessionCreateSeconds), formatCounts(r.Logins), r.WindowLogins, r.LiveSessionsAfterWindow)
		if len(r.SessionsNotReady) > 0 {
			fmt.Fprintf(w, "- sessions not Ready at the end of the wait, by reason: %s\n", formatCounts(r.SessionsNotReady))
		}
		fmt.Fprintf(w, "- manager after phase 2b: RSS %s, Go heap in use %s; %d more error lines in its log\n",
			mib(r.SessionsRSSAfterBytes), mib(r.SessionsHeapAfterBytes), r.SessionsLogErrors)
	}
	if r.Clouds > 0 {
		r.writeCloudMarkdown(w)
	}
	observed := "not all observed within the wait"
	if r.RestartObserved {
		observed = fmt.Sprintf("all %d apps, %d sessions and %d clouds observed Ready after %s", r.Apps, r.Sessions, r.Clouds, secs(r.RestartObservedSecs))
	}
	fmt.Fprintf(w, "- restart: the old manager exited %s after SIGTERM; the new one ready after %s, %s (times from process start)",
		secs(r.RestartStopSeconds), secs(r.RestartReadySeconds), observed)
	if len(r.RestartUpstreamRoutes) > 0 {
		fmt.Fprintf(w, "; upstream calls: %s", formatCounts(r.RestartUpstreamRoutes))
	}
	if r.Sessions > 0 {
		fmt.Fprintf(w, "; keep-alives %d (%d due by the sessions' nextKeepAliveTime); %d live sessions upstream at the end", r.RestartKeepAlives, r.RestartKeepAlivesPlan, r.RestartLiveSessions)
	}
	if r.Clouds > 0 {
		fmt.Fprintf(w, "; Cloud refreshes %d (%d due by the clouds' renewalTime), %d of them in the first %s (%d due)",
			r.RestartCloudRefreshes, r.RestartCloudRefreshesDue, r.RestartCloudEarly, restartEarlyWindow, r.RestartCloudEarlyDue)
		if len(r.RestartCloudsUnauthorizedWhy) > 0 {
			fmt.Fprintf(w, "; clouds not Authorized by reason: %s", formatCounts(r.RestartCloudsUnauthorizedWhy))
		}
	}
	fmt.Fprintln(w)
	if r.ManagerRestartErr != "" {
		fmt.Fprintf(w, "- the first manager process exited uncleanly: %s\n", r.ManagerRestartErr)
	}
	if r.WorkDir != "" {
		fmt.Fprintf(w, "- logs: %s\n", r.WorkDir)
	}
}

// run sets everything up, runs the phases and tears everything down.
func run(ctx context.Context, o options) (_ *Results, err error) {
	res := &Results{Apps: o.apps, UnrelatedSecrets: o.unrelated, RestartWindowSeconds: o.restartWindow.Seconds(),
		Sessions: o.sessions, KeepAliveSeconds: o.keepAlive.Seconds(), Clouds: o.clouds, CloudLifetimeSeconds: o.cloudLifetime.Seconds()}
	// The work directory (binaries, logs, a kubeconfig) is under bin/, not the shared temporary
	// directory, where a cleaner could pull it from under a running manager.
	root, err := harness.RepoRoot()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, "bin", "bench"), 0o755); err != nil {
		return nil, err
	}
	workDir, err := os.MkdirTemp(filepath.Join(root, "bin", "bench"), "run-")
	if err != nil {
		return nil, err
	}
	// Registered first, so it runs after every process has been stopped.
	defer func() {
		if err != nil || o.keep || !res.Pass {
			res.WorkDir = workDir
			logf("manager and simulator logs kept in %s", workDir)
			return
		}
		_ = os.RemoveAll(workDir)
		_ = os.Remove(filepath.Dir(workDir)) // bin/bench, when no other run is kept there
	}()

	// Build the binaries while the control plane starts: both take seconds.
	logf("starting kube-apiserver and etcd; building the manager and the simulator")
	type built struct {
		mgr, sim string
		err      error
	}
	bc := make(chan built, 1)
	go func() {
		m, s, err := harness.BuildBinaries(ctx, filepath.Join(workDir, "bin"))
		bc <- built{m, s, err}
	}()
	cp, cpErr := harness.StartControlPlane(ctx)
	b := <-bc
	if cpErr != nil {
		return nil, cpErr
	}
	defer func() {
		logf("stopping the control plane")
		if err := cp.Stop(); err != nil {
			logf("stopping the control plane: %v", err)
		}
	}()
	if b.err != nil {
		return nil, b.err
	}
	c := cp.Client

	// One app key per ThingSpaceApp, in a file: a thousand --app flags would put every secret in ps.
	keys := make([]string, o.apps)
	secrets := make([]string, o.apps)
	var appsFile strings.Builder
	for i := range keys {
		keys[i] = fmt.Sprintf("bench-key-%04d", i)
		secrets[i] = "bench-" + randHex(12)
		fmt.Fprintf(&appsFile, "%s:%s\n", keys[i], secrets[i])
	}
	appsPath := filepath.Join(workDir, "apps.txt")
	if err := os.WriteFile(appsPath, []byte(appsFile.String()), 0o600); err != nil {
		return nil, err
	}
	// One UWS user per M2MSession, in a file too.
	users, passwords, usersPath, err := uwsUsers(workDir, o.sessions)
	if err != nil {
		return nil, err
	}
	sim, err := harness.SimConfig{
		Binary: b.sim,
		Args: []string{"--apps-file", appsPath, "--token-lifetime", "1h",
			"--m2m-users-file", usersPath, "--m2m-idle-timeout", o.idleTimeout.String()},
		CloudAccessTokenLifetime: o.cloudLifetime,
		LogPath:                  filepath.Join(workDir, "sim.log"),
	}.Start(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sim.Stop() }()
	logf("simulator on %s with %d app keys, 1h tokens, %d UWS users, sessions idle out after %s, Verizon Cloud access tokens live %s",
		sim.URL, o.apps, o.sessions, o.idleTimeout, o.cloudLifetime)

	// The manager is restarted twice: it reads a copy of the kubeconfig that lives as long as the run.
	kubeconfig := filepath.Join(workDir, "kubeconfig")
	if err := copyFile(cp.KubeconfigPath, kubeconfig); err != nil {
		return nil, err
	}
	mgr, err := harness.ManagerConfig{
		Binary:     b.mgr,
		Kubeconfig: kubeconfig,
		LogPath:    filepath.Join(workDir, "manager.log"),
	}.Start(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		// After Ctrl-C in a terminal the manager got the SIGINT too, and SIGTERM on top of it makes it
		// exit 1: nothing to report then.
		if err := mgr.Stop(); err != nil && ctx.Err() == nil {
			logf("stopping the manager: %v", err)
		}
	}()

	// ---- Phase 1: unrelated Secrets -------------------------------------------------------------
	if o.unrelated > 0 {
		logf("phase 1: manager started without unrelated Secrets; waiting for it to settle")
		base, err := settle(ctx, mgr, 0)
		if err != nil {
			return nil, err
		}
		res.RSSBaselineBytes, res.HWMBaselineBytes, res.HeapBaselineBytes = base.rss, base.hwm, base.heap
		logf("phase 1: baseline RSS %s (peak %s, Go heap in use %s)", mib(base.rss), mib(base.hwm), mib(base.heap))
		if err := mgr.Stop(); err != nil {
			return nil, fmt.Errorf("stopping the manager: %w", err)
		}

		logf("phase 1: creating %d unrelated Secrets of 1 MiB in namespace %s", o.unrelated, nsUnrelated)
		t0 := time.Now()
		if err := createUnrelated(ctx, c, o.unrelated, o.creators); err != nil {
			return nil, err
		}
		res.UnrelatedCreateSecs = time.Since(t0).Seconds()
		logf("phase 1: created in %s; starting the manager again", secs(res.UnrelatedCreateSecs))

		offset := len(mgr.Logs())
		if err := mgr.Start(ctx); err != nil {
			return nil, err
		}
		with, err := settle(ctx, mgr, offset)
		if err != nil {
			return nil, err
		}
		res.RSSWithUnrelatedBytes, res.HWMWithUnrelatedBytes, res.HeapWithUnrelated = with.rss, with.hwm, with.heap
		res.UnrelatedAddedBytes = with.rss - base.rss
		logf("phase 1: with %d unrelated Secrets RSS %s (peak %s, Go heap in use %s): %s",
			o.unrelated, mib(with.rss), mib(with.hwm), mib(with.heap), signedMiB(res.UnrelatedAddedBytes))
	}

	// ---- Phase 2: N apps -----------------------------------------------------------------------
	if err := sim.ResetStats(); err != nil {
		return nil, err
	}
	if err := phase2(ctx, c, sim, mgr, o, keys, secrets, res); err != nil {
		return nil, err
	}

	// ---- Phase 2b: M2M sessions ------------------------------------------------------------------
	if o.sessions > 0 {
		if err := phase2b(ctx, c, sim, mgr, o, users, passwords, res); err != nil {
			return nil, err
		}
	}

	// ---- Phase 2c: CloudAuthorizations ----------------------------------------------------------
	if o.clouds > 0 {
		if err := phase2c(ctx, c, sim, mgr, o, res); err != nil {
			return nil, err
		}
	}

	// ---- Phase 3: restart ----------------------------------------------------------------------
	if err := phase3(ctx, c, sim, mgr, o, res); err != nil {
		return nil, err
	}
	res.evaluate()
	return res, nil
}

type memSample struct{ rss, hwm, heap int64 }

// settle waits until every controller of the manager has started its workers (so every cache it
// watches, including the metadata cache of all Secrets, has synced), then until the manager's RSS holds
// still, and returns its memory then. logOffset is where this process's part of the log begins.
func settle(ctx context.Context, mgr *harness.Manager, logOffset int) (memSample, error) {
	const (
		every     = 500 * time.Millisecond
		minWait   = 5 * time.Second
		window    = 6 // samples: 3 s
		tolerance = 512 << 10
		maxWait   = 30 * time.Second
	)
	err := harness.WaitFor(ctx, 90*time.Second, 100*time.Millisecond, func() (bool, error) {
		if !mgr.Running() {
			return false, errors.New("the manager exited; log " + mgr.LogPath)
		}
		return controllersStarted(mgr.Logs(), logOffset), nil
	})
	if err != nil {
		return memSample{}, fmt.Errorf("waiting for the manager's controllers to start: %w", err)
	}
	start := time.Now()
	var samples []int64
	for {
		rss := mgr.RSS()
		if rss == 0 {
			return memSample{}, errors.New("the manager exited; log " + mgr.LogPath)
		}
		samples = append(samples, rss)
		// A controller that began starting after the others had finished shows up here.
		if len(samples) >= window && time.Since(start) >= minWait && controllersStarted(mgr.Logs(), logOffset) {
			last := samples[len(samples)-window:]
			if slices.Max(last)-slices.Min(last) <= tolerance || time.Since(start) >= maxWait {
				var total int64
				for _, v := range last {
					total += v
				}
				hwm, _, heap := readMem(mgr)
				return memSample{rss: total / window, hwm: hwm, heap: heap}, nil
			}
		}
		select {
		case <-ctx.Done():
			return memSample{}, ctx.Err()
		case <-time.After(every):
		}
	}
}

// controllersStarted reports whether, in logs past offset, every controller that logged "Starting
// EventSource" has also logged "Starting workers", which controller-runtime does once its sources
// have synced.
func controllersStarted(logs string, offset int) bool {
	if offset > len(logs) {
		offset = 0
	}
	sources, workers := map[string]bool{}, map[string]bool{}
	for line := range strings.SplitSeq(logs[offset:], "\n") {
		var e struct {
			Msg        string `json:"msg"`
			Controller string `json:"controller"`
		}
		if !strings.Contains(line, `"Starting `) || json.Unmarshal([]byte(line), &e) != nil || e.Controller == "" {
			continue
		}
		switch e.Msg {
		case "Starting EventSource":
			sources[e.Controller] = true
		case "Starting workers":
			workers[e.Controller] = true
		}
	}
	if len(sources) == 0 {
		return false
	}
	for c := range sources {
		if !workers[c] {
			return false
		}
	}
	return true
}

func createUnrelated(ctx context.Context, c client.Client, n, workers int) error {
	if err := createNamespace(ctx, c, nsUnrelated); err != nil {
		return err
	}
	blob := make([]byte, unrelatedSecretSize)
	_, _ = rand.Read(blob)
	return parallel(ctx, n, workers, func(i int) error {
		return create(ctx, c, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: nsUnrelated, Name: fmt.Sprintf("unrelated-%04d", i),
				Labels: map[string]string{"app.kubernetes.io/part-of": "some-other-app"}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"blob": blob},
		})
	})
}

func phase2(ctx context.Context, c client.Client, sim *harness.Sim, mgr *harness.Manager, o options,
	keys, secrets []string, res *Results) error {
	if err := createNamespace(ctx, c, nsApps); err != nil {
		return err
	}
	logf("phase 2: creating %d credentials Secrets and ThingSpaceApps with %d creators", o.apps, o.creators)

	out, err := runRollout(ctx, mgr, o, rollout{
		phase: "phase 2", what: "ThingSpaceApps", n: o.apps,
		create: func(i int) error {
			creds := fmt.Sprintf("creds-%04d", i)
			if err := createSecret(ctx, c, creds, map[string]string{harness.CredKey: keys[i], harness.CredSecret: secrets[i]}); err != nil {
				return err
			}
			return create(ctx, c, harness.NewApp(nsApps, fmt.Sprintf("app-%04d", i), sim.URL, creds, fmt.Sprintf("token-%04d", i)))
		},
		countReady: func(ctx context.Context) (int, map[string]int, error) {
			list := &v1alpha1.ThingSpaceAppList{}
			if err := c.List(ctx, list, client.InNamespace(nsApps)); err != nil {
				return 0, nil, err
			}
			ready, why := countReady(len(list.Items), func(i int) (bool, string) { return harness.Ready(&list.Items[i]) })
			return ready, why, nil
		},
	})
	if err != nil {
		return err
	}
	res.CreateSeconds, res.AllReady, res.AllReadySeconds, res.ReadyCount = out.createSeconds, out.allReady, out.readySeconds, out.ready
	if !out.allReady {
		res.NotReadyReasons = out.notReady
	}

	// Let stragglers (a second reconcile, a late retry) land before counting.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(3 * time.Second):
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
	res.ManagerLogErrors = strings.Count(mgr.Logs(), `"level":"error"`)
	logf("phase 2: %d token requests (%s); manager peak RSS %s", res.TokenRequests, formatCounts(res.TokenByStatus), mib(res.PeakRSSBytes))
	return nil
}

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
	var nextKeepAlives []time.Time
	if o.sessions > 0 {
		list := &v1alpha1.M2MSessionList{}
		if err := c.List(ctx, list, client.InNamespace(nsApps)); err != nil {
			return fmt.Errorf("listing M2MSessions: %w", err)
		}
		for i := range list.Items {
			if t := list.Items[i].Status.NextKeepAliveTime; t != nil {
				nextKeepAlives = append(nextKeepAlives, t.Time)
			}
		}
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
	res.RestartReadySeconds = readyAt.Sub(start).Seconds()
	logf("phase 3: manager ready after %s; counting upstream calls for %s", secs(res.RestartReadySeconds), o.restartWindow)
	end := readyAt.Add(o.restartWindow)
	for {
		if !res.RestartObserved {
			if expo, err := mgr.Metrics(); err == nil && countSamples(expo, "thingspace_app_ready", nsApps, 1) >= o.apps &&
				countSamples(expo, "thingspace_m2m_session_ready", nsApps, 1) >= o.sessions &&
				countSamples(expo, "thingspace_cloud_ready", nsApps, 1) >= o.clouds {
				res.RestartObserved = true
				res.RestartObservedSecs = time.Since(start).Seconds()
				logf("phase 3: all %d apps, %d sessions and %d clouds observed Ready again after %s", o.apps, o.sessions, o.clouds, secs(res.RestartObservedSecs))
			}
		}
		if o.clouds > 0 {
			clouds.poll(sim, readyAt)
		}
		// Keep watching past the window while the apps are not all observed, within bounds.
		if time.Now().After(end) && (res.RestartObserved || time.Since(readyAt) > max(o.restartWindow, 60*time.Second)) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
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

// countSamples counts the samples of metric name with label namespace=ns whose value is want.
func countSamples(exposition, name, ns string, want float64) int {
	n := 0
	for line := range strings.SplitSeq(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		end := strings.LastIndexByte(rest, '}')
		if end < 0 || !strings.Contains(rest[:end], `namespace="`+ns+`"`) {
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

// createSecret creates the Secret name in the benchmark's namespace with data.
func createSecret(ctx context.Context, c client.Client, name string, data map[string]string) error {
	b := make(map[string][]byte, len(data))
	for k, v := range data {
		b[k] = []byte(v)
	}
	return create(ctx, c, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsApps, Name: name},
		Type:       corev1.SecretTypeOpaque,
		Data:       b,
	})
}

// readMem returns the manager's peak RSS (VmHWM), its RSS and its Go heap in use.
func readMem(mgr *harness.Manager) (peak, rss, heap int64) {
	peak, rss = mgr.PeakRSS(), mgr.RSS()
	if expo, err := mgr.Metrics(); err == nil {
		if v, ok := harness.MetricValue(expo, "go_memstats_heap_inuse_bytes", nil); ok {
			heap = int64(v)
		}
	}
	return peak, rss, heap
}

func createNamespace(ctx context.Context, c client.Client, name string) error {
	err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// create creates obj, retrying what the API server may answer under load.
func create(ctx context.Context, c client.Client, obj client.Object) error {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.Create(ctx, obj)
		if err == nil || ctx.Err() != nil {
			return err
		}
		retriable := apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
			apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err)
		if !retriable || attempt == 5 {
			return fmt.Errorf("create %T %s/%s: %w", obj, obj.GetNamespace(), obj.GetName(), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay *= 2
		obj.SetResourceVersion("")
	}
}

// parallel calls fn(0..n-1) from workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// copyFile copies from to path, readable by the owner only.
func copyFile(from, path string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func signedMiB(b int64) string {
	sign := "+"
	if b < 0 {
		sign = "−"
	}
	return fmt.Sprintf("%s%.1f MiB", sign, math.Abs(float64(b))/(1<<20))
}

func secs(s float64) string { return fmt.Sprintf("%.1f s", s) }

// rollout is one phase's "create n objects, then wait until all are Ready".
type rollout struct {
	phase, what string
	// did and state name, in the progress lines, what create does and what countReady counts; empty
	// means "created" and "Ready".
	did, state string
	n          int
	create     func(i int) error
	// countReady lists the objects: how many are Ready, and why the others are not.
	countReady func(ctx context.Context) (ready int, reasons map[string]int, err error)
}

type rolloutResult struct {
	createSeconds, readySeconds float64
	allReady                    bool
	ready                       int
	notReady                    map[string]int
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
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
	res.readySeconds = time.Since(start).Seconds()
	res.ready = ready
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
