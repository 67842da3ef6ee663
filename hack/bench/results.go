package main

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/credops/thingspace-operator/test/harness"
)

// Results is what the benchmark measured; it is also the --json output.
type Results struct {
	Apps             int `json:"apps"`
	UnrelatedSecrets int `json:"unrelated_secrets"`
	LabelledSecrets  int `json:"labelled_secrets,omitempty"` // of them, labelled managed-by thingspace-operator
	// GoMemLimit is the manager's GOMEMLIMIT, the Deployment's (config/manager).
	GoMemLimit string `json:"gomemlimit"`
	// GoGC is the manager's GOGC, the Deployment's ("": the Go default, 100).
	GoGC string `json:"gogc,omitempty"`
	// ManagerArgs are --manager-args: not the shipped configuration when set.
	ManagerArgs []string `json:"manager_args,omitempty"`

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
	CreateSeconds   float64        `json:"create_seconds"`    // first create → last create answered
	AllReady        bool           `json:"all_ready"`         // all apps Ready=True before --ready-timeout
	ReadyCount      int            `json:"ready_count"`       // Ready=True at the end of the wait
	AllReadySeconds float64        `json:"all_ready_seconds"` // first create → all Ready=True (or the timeout)
	NotReadyReasons map[string]int `json:"not_ready_reasons,omitempty"`
	TokenRequests   int            `json:"token_requests"` // POST /api/ts/v1/oauth2/token, any status
	TokenByStatus   map[string]int `json:"token_requests_by_status"`
	OtherUpstream   map[string]int `json:"other_upstream_requests,omitempty"` // every other /api route
	PeakRSSBytes    int64          `json:"peak_rss_bytes"`                    // VmHWM of the manager after phase 2
	RSSAfterBytes   int64          `json:"rss_after_bytes"`                   // VmRSS after phase 2
	HeapAfterBytes  int64          `json:"heap_inuse_after_bytes,omitempty"`
	// RSSFileAfterBytes is the file-backed part of RSSAfterBytes (RssFile): the executable's pages, about
	// constant whatever the manager holds, and counted in the peak too.
	RSSFileAfterBytes int64  `json:"rss_file_after_bytes,omitempty"`
	ManagerLogErrors  int    `json:"manager_log_errors"` // "level":"error" lines in the manager's log
	ManagerRestartErr string `json:"manager_restart_error,omitempty"`

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

	// Phase 2d (the cluster kinds' consumers).
	Consumers ConsumerResults `json:"consumers"`

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
	RestartStopSeconds   float64 `json:"restart_stop_seconds"`         // SIGTERM → the old process gone
	RestartReadySeconds  float64 `json:"restart_ready_seconds"`        // process start → /readyz 200
	RestartObserved      bool    `json:"restart_all_observed"`         // thingspace_app_ready == 1 for all apps
	RestartObservedSecs  float64 `json:"restart_all_observed_seconds"` // process start → all observed
	RestartUpstreamCalls int     `json:"restart_upstream_calls"`       // from process start to ready + window, keep-alives aside
	RestartLogins        int     `json:"restart_logins"`
	// ThingSpace token requests (any app, the ClusterThingSpaceApp's included), and those due by the
	// statuses' renewalTime.
	RestartTokenRequests    int            `json:"restart_token_requests"`
	RestartTokenRequestsDue int            `json:"restart_token_requests_due"`
	RestartKeepAlives       int            `json:"restart_keepalives"`
	RestartKeepAlivesPlan   int            `json:"restart_keepalives_due"` // due by the statuses' nextKeepAliveTime
	RestartLiveSessions     int            `json:"restart_live_sessions"`  // the simulator's count at the end
	RestartUpstreamRoutes   map[string]int `json:"restart_upstream_by_route,omitempty"`
	RestartWindowSeconds    float64        `json:"restart_window_seconds"`
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

	// Per-object latencies of each rollout, and the operator's API requests phase by phase.
	Latencies             []Latency  `json:"latencies,omitempty"`
	API                   []PhaseAPI `json:"api_by_phase,omitempty"`
	RotationTokenRequests int        `json:"rotation_token_requests,omitempty"` // the probe's refreshes

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
		readyCheck(fmt.Sprintf("all %d ThingSpaceApps Ready (first create → Ready=True)", r.Apps), readyResult(r), r.Apps, targetReady, r.AllReady, r.AllReadySeconds),
		{
			Measure: "token requests (" + harness.RouteToken + ")",
			Result:  strconv.Itoa(r.TokenRequests),
			Target:  "exactly " + strconv.Itoa(r.Apps),
			Pass:    r.TokenRequests == r.Apps,
		},
		rssCheck(fmt.Sprintf("manager peak RSS (VmHWM) with %d ThingSpaceApps alone", r.Apps), r.PeakRSSBytes, r.Apps, issueScale, issueAppsRSS),
	}
	if r.Consumers.N > 0 {
		r.Checks = append(r.Checks, consumerChecks(r)...)
	}
	if r.UnrelatedSecrets > 0 {
		r.Checks = append(r.Checks, Check{
			Measure: fmt.Sprintf("RSS added by %d unrelated 1 MiB Secrets%s (settled)", r.UnrelatedSecrets, labelledNote(r.LabelledSecrets)),
			Result:  fmt.Sprintf("%s (%s → %s)", signedMiB(r.UnrelatedAddedBytes), mib(r.RSSBaselineBytes), mib(r.RSSWithUnrelatedBytes)),
			Target:  fmt.Sprintf("< %d MiB", targetUnrelatedRSS>>20),
			Pass:    r.UnrelatedAddedBytes < targetUnrelatedRSS,
		})
	}
	if r.Sessions > 0 {
		logins := sum(r.Logins)
		r.Checks = append(r.Checks,
			readyCheck(fmt.Sprintf("all %d M2MSessions Ready (first create → Ready=True)", r.Sessions), sessionsReadyResult(r), r.Sessions,
				targetSessionsReady, r.SessionsAllReady, r.SessionsReadySeconds),
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
			rssCheck(fmt.Sprintf("manager peak RSS (VmHWM) with %d apps + %d consumers of each cluster kind + %d M2MSessions", r.Apps, r.Consumers.N, r.Sessions),
				r.SessionsPeakRSSBytes, r.Apps+r.Sessions, 2*issueScale, issueAllRSS),
		)
	}
	if r.Clouds > 0 {
		r.Checks = append(r.Checks, cloudChecks(r)...)
	}
	r.Checks = append(r.Checks, latencyChecks(r)...)
	r.Checks = append(r.Checks, apiChecks(r)...)
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
	observed := "not all within the wait"
	if r.RestartObserved {
		observed = secs(r.RestartObservedSecs)
	}
	r.Checks = append(r.Checks, Check{
		Measure: "after a restart, every object observed Ready again (process start → the manager's *_ready_status metrics)",
		Result:  observed,
		Target:  fmt.Sprintf("≤ %.0f s (issue 13)", targetRestartObserved.Seconds()),
		Pass:    r.RestartObserved && r.RestartObservedSecs <= targetRestartObserved.Seconds(),
	}, restartCalls, Check{
		Measure: fmt.Sprintf("ThingSpace token requests after a restart (start → ready + %s), apps and the ClusterThingSpaceApp", window),
		Result:  strconv.Itoa(r.RestartTokenRequests),
		Target:  fmt.Sprintf("≤ %d (the ones due by the statuses' renewalTime)", r.RestartTokenRequestsDue),
		Pass:    r.RestartTokenRequests <= r.RestartTokenRequestsDue,
	})
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

// readyCheck is a rollout's "all n Ready" row, with allReadyTarget's target.
func readyCheck(measure, result string, n int, limit time.Duration, all bool, took float64) Check {
	target, pass := allReadyTarget(n, limit, all, took)
	return Check{Measure: measure, Result: result, Target: target, Pass: pass}
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

// labelledNote says how many of the unrelated Secrets carried the managed-by label.
func labelledNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d of them labelled managed-by", n)
}

// targetAfterLastCreate: every object in its state this soon after the last create was answered.
const targetAfterLastCreate = 5 * time.Second

func (r *Results) addLatency(l *Latency) {
	if l != nil {
		r.Latencies = append(r.Latencies, *l)
	}
}

// latencyChecks: per rollout, create→state p50/p99, and the last object within 5 s of the last create.
func latencyChecks(r *Results) []Check {
	var out []Check
	for _, l := range r.Latencies {
		out = append(out, Check{
			Measure: l.What + ": create → state p50 / p99 / max; the last one after the last create",
			Result:  fmt.Sprintf("%.2f / %.2f / %.2f s; %.2f s (%d objects)", l.P50, l.P99, l.Max, l.AfterLastCreate, l.N),
			Target:  fmt.Sprintf("last ≤ %.0f s after the last create", targetAfterLastCreate.Seconds()),
			Pass:    l.N > 0 && l.AfterLastCreate <= targetAfterLastCreate.Seconds(),
		})
	}
	return out
}
