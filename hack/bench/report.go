package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

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
	fmt.Fprintf(w, "- manager GOMEMLIMIT %s", r.GoMemLimit)
	if r.GoGC != "" {
		fmt.Fprintf(w, ", GOGC %s", r.GoGC)
	}
	fmt.Fprint(w, " (config/manager's)")
	if len(r.ManagerArgs) > 0 {
		fmt.Fprintf(w, "; extra flags %v (not the shipped configuration)", r.ManagerArgs)
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
	fmt.Fprintf(w, "- manager after phase 2: RSS %s (%s of it the executable's file-backed pages), Go heap in use %s; %d error lines in its log\n",
		mib(r.RSSAfterBytes), mib(r.RSSFileAfterBytes), mib(r.HeapAfterBytes), r.ManagerLogErrors)
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
	if r.Consumers.N > 0 {
		r.writeConsumersMarkdown(w)
	}
	if r.Clouds > 0 {
		r.writeCloudMarkdown(w)
	}
	observed := "not all observed within the wait"
	if r.RestartObserved {
		observed = fmt.Sprintf("all %d apps, %d sessions, %d clouds and %d consumers of each cluster kind observed Ready after %s",
			r.Apps, r.Sessions, r.Clouds, r.Consumers.N, secs(r.RestartObservedSecs))
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
