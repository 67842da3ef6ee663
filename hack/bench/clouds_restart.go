package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/hack/internal/cloud"
	"github.com/credops/thingspace-operator/test/harness"
)

// cloudRestart is what phase 3 keeps about the CloudAuthorizations across the restart.
type cloudRestart struct {
	renewals []time.Time // each one's next planned refresh when the old manager had stopped
	markers  int         // Secrets the old manager left with a refresh marker
	early    int         // refreshes from process start to earlyAt
	earlyAt  time.Time   // when early was read, zero until then
	final    harness.CloudStats
}

// beforeRestart reads each CloudAuthorization's planned refresh (status.renewalTime) and counts the
// Secrets still marked as being refreshed; the manager is stopped, so both are final. After a SIGTERM
// there should be no marker: a refresh in flight completes and is stored.
func (cr *cloudRestart) beforeRestart(ctx context.Context, c client.Client) error {
	items, err := listClouds(ctx, c)
	if err != nil {
		return err
	}
	for _, ca := range items {
		if t := ca.Status.RenewalTime; t != nil {
			cr.renewals = append(cr.renewals, t.Time)
		}
	}
	list := &corev1.SecretList{}
	if err := c.List(ctx, list, client.InNamespace(nsApps)); err != nil {
		return err
	}
	for _, s := range list.Items {
		if _, ok := s.Annotations[v1alpha1.RefreshStartedAnnotation]; ok {
			cr.markers++
		}
	}
	return nil
}

// poll counts the refreshes of the early window once it is over. The due ones are counted up to when
// the count was read, so a late read cannot make the operator look early.
func (cr *cloudRestart) poll(sim *harness.Sim, readyAt time.Time) {
	if !cr.earlyAt.IsZero() || time.Since(readyAt) < restartEarlyWindow {
		return
	}
	if st, err := sim.CloudStats(); err == nil {
		cr.early, cr.earlyAt = st.Refreshes, time.Now()
	}
}

// count reads the Cloud counts at the end of the restart window, before its end is taken.
func (cr *cloudRestart) count(sim *harness.Sim) (err error) {
	cr.final, err = sim.CloudStats()
	return err
}

// afterRestart fills the restart's Cloud figures in res (the stats were reset just before the start,
// count read them at countedTo), once a marker left behind would have cost its grant.
func (cr *cloudRestart) afterRestart(ctx context.Context, c client.Client, o options, countedTo time.Time, readyAt time.Time, res *Results) error {
	st := cr.final
	shortest, _ := refreshPeriods(o.cloudLifetime)
	res.RestartCloudRefreshes = st.Refreshes
	res.RestartCloudRefreshesDue = dueBy(cr.renewals, shortest, countedTo)
	if cr.earlyAt.IsZero() {
		cr.early, cr.earlyAt = st.Refreshes, countedTo // a restart window shorter than the early one
	}
	res.RestartCloudEarly, res.RestartCloudEarlyDue = cr.early, dueBy(cr.renewals, shortest, cr.earlyAt)
	res.RestartCodeExchanges = st.CodeExchanges
	res.RestartRefreshTokenReuses, res.RestartInvalidGrants = st.RefreshTokenReuses, st.InvalidGrants
	res.RestartRefreshMarkers = cr.markers
	if wait := time.Until(readyAt.Add(inFlightBound + 5*time.Second)); wait > 0 {
		logf("phase 3: waiting %s, until a refresh marker the old manager left would have cost its grant", wait.Round(time.Second))
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
	authorized, lost, err := countClouds(c, func(ca *v1alpha1.CloudAuthorization) (bool, string) {
		status, reason := cloud.Condition(ca, v1alpha1.ConditionAuthorized)
		return status == metav1.ConditionTrue, reason
	})(ctx)
	if err != nil {
		return err
	}
	res.RestartCloudsUnauthorized, res.RestartCloudsUnauthorizedWhy = o.clouds-authorized, lost
	logf("phase 3: %d Cloud refreshes (%d due by the statuses' renewalTime; %d in the first %s, %d due), %d code exchanges, %d refresh-token reuses, %d invalid grants; %d refresh markers left by the old manager, %d CloudAuthorizations not Authorized %s after ready",
		res.RestartCloudRefreshes, res.RestartCloudRefreshesDue, res.RestartCloudEarly, restartEarlyWindow, res.RestartCloudEarlyDue,
		res.RestartCodeExchanges, res.RestartRefreshTokenReuses, res.RestartInvalidGrants, res.RestartRefreshMarkers,
		res.RestartCloudsUnauthorized, time.Since(readyAt).Round(time.Second))
	return nil
}

// cloudChecks are the rows of phase 2c.
func cloudChecks(r *Results) []Check {
	lifetime := time.Duration(r.CloudLifetimeSeconds * float64(time.Second))
	low, high := refreshRatioBounds(lifetime)
	return []Check{
		{
			Measure: fmt.Sprintf("all %d CloudAuthorizations Authorized and Ready (first create → URL → the person → Authorized)", r.Clouds),
			Result:  cloudTimes(r),
			Target:  "all; the time is reported, not judged",
			Pass:    r.CloudAllAuthorized,
		},
		{
			Measure: "code exchanges (authorization_code grants), callback pages answered 200",
			Result:  fmt.Sprintf("%d, %d (%d codes issued)", r.CloudCodeExchanges, r.CloudCallbackPages["200"], r.CloudCodesIssued),
			Target:  fmt.Sprintf("exactly %d, %d", r.Clouds, r.Clouds),
			Pass:    r.CloudCodeExchanges == r.Clouds && r.CloudCallbackPages["200"] == r.Clouds && sum(r.CloudCallbackPages) == r.Clouds,
		},
		{
			Measure: fmt.Sprintf("refreshes in %s at a %s access-token lifetime, per object per lifetime", secs(r.CloudWindowSeconds), lifetime),
			Result:  fmt.Sprintf("%d = %.2f", r.CloudRefreshes, r.CloudRefreshesPerLifetime),
			Target:  fmt.Sprintf("%.2f–%.2f (1.5 at ⅔ of the lifetime; jitter and rounding to the second make it more)", low, high),
			// No window (--cloud-window=0): nothing to judge.
			Pass: r.CloudWindowSeconds < 1 || (r.CloudRefreshesPerLifetime >= low && r.CloudRefreshesPerLifetime <= high),
		},
		{
			Measure: "refresh-token reuses, invalid grants (create → end of the refresh window)",
			Result:  fmt.Sprintf("%d, %d", r.CloudRefreshTokenReuses, r.CloudInvalidGrants),
			Target:  "0, 0 (hard)",
			Hard:    true,
			Pass:    r.CloudRefreshTokenReuses == 0 && r.CloudInvalidGrants == 0,
		},
		{
			Measure: "at the end of the window: Authorized and Ready; the Secrets' access tokens accepted by GET /cloud/1/account",
			Result:  fmt.Sprintf("%d, %d", r.CloudReadyAfterWindow, r.CloudTokensAccepted),
			Target:  fmt.Sprintf("%d, %d", r.Clouds, r.Clouds),
			Pass:    r.CloudReadyAfterWindow == r.Clouds && r.CloudTokensAccepted == r.Clouds,
		},
		rssCheck(fmt.Sprintf("manager peak RSS (VmHWM) with %d apps + %d sessions + %d clouds (+ %d consumers of each cluster kind)", r.Apps, r.Sessions, r.Clouds, r.Consumers.N),
			r.CloudPeakRSSBytes, r.Apps+r.Sessions+r.Clouds, issueAllObjects, issueAllRSS),
	}
}

// cloudRestartChecks are the rows of phase 3 about the CloudAuthorizations.
func cloudRestartChecks(r *Results, window time.Duration) []Check {
	return []Check{
		{
			Measure: fmt.Sprintf("code exchanges after a restart (start → ready + %s)", window),
			Result:  strconv.Itoa(r.RestartCodeExchanges),
			Target:  "0",
			Pass:    r.RestartCodeExchanges == 0,
		},
		{
			Measure: fmt.Sprintf("refresh markers left by SIGTERM; CloudAuthorizations not Authorized %s after the restart", inFlightBound+5*time.Second),
			Result:  fmt.Sprintf("%d; %d", r.RestartRefreshMarkers, r.RestartCloudsUnauthorized),
			Target:  "0; 0",
			Pass:    r.RestartRefreshMarkers == 0 && r.RestartCloudsUnauthorized == 0,
		},
		{
			Measure: fmt.Sprintf("Verizon Cloud refreshes after a restart (start → ready + %s; start → ready + %s)", window, restartEarlyWindow),
			Result:  fmt.Sprintf("%d; %d", r.RestartCloudRefreshes, r.RestartCloudEarly),
			Target: fmt.Sprintf("≤ %d; ≤ %d (the ones due by the statuses' renewalTime)",
				dueLimit(r.RestartCloudRefreshesDue), dueLimit(r.RestartCloudEarlyDue)),
			Pass: r.RestartCloudRefreshes <= dueLimit(r.RestartCloudRefreshesDue) && r.RestartCloudEarly <= dueLimit(r.RestartCloudEarlyDue),
		},
		{
			Measure: "refresh-token reuses, invalid grants after a restart",
			Result:  fmt.Sprintf("%d, %d", r.RestartRefreshTokenReuses, r.RestartInvalidGrants),
			Target:  "0, 0 (hard)",
			Hard:    true,
			Pass:    r.RestartRefreshTokenReuses == 0 && r.RestartInvalidGrants == 0,
		},
	}
}

// cloudTimes is the time to all Authorized, split into the operator's and the person's parts.
func cloudTimes(r *Results) string {
	total := secs(r.CloudTotalSeconds)
	if !r.CloudAllAuthorized {
		total = fmt.Sprintf("%d/%d after %s", r.CloudAuthorizedCount, r.Clouds, total)
	}
	return fmt.Sprintf("%s: URLs %s; the person's consents %s (per consent %.0f ms at the consent page, %.0f ms at the operator's callback); Authorized %s after the last callback",
		total, secs(r.CloudURLsSeconds), secs(r.CloudConsentSeconds), r.CloudAuthorizeLegMillis, r.CloudCallbackLegMillis,
		secs(math.Max(0, r.CloudAuthorizedSeconds-r.CloudConsentSeconds)))
}

// diffCounts is after − before, status by status, leaving out zeros.
func diffCounts(after, before map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// writeCloudMarkdown writes the notes of phase 2c under the results table.
func (r *Results) writeCloudMarkdown(w io.Writer) {
	fmt.Fprintf(w, "- clouds: %d Verizon Cloud apps, %d credentials Secrets + %d CloudAuthorizations answered in %s; callback pages by status: %s; Cloud token requests by status: %s\n",
		r.Clouds, r.Clouds, r.Clouds, secs(r.CloudCreateSeconds), formatCounts(r.CloudCallbackPages), formatCounts(r.CloudTokenByStatus))
	if len(r.CloudNotAuthorized) > 0 {
		fmt.Fprintf(w, "- clouds not Authorized and Ready at the end of the wait, by reason: %s\n", formatCounts(r.CloudNotAuthorized))
	}
	if len(r.CloudNotReadyAfterWindow) > 0 {
		fmt.Fprintf(w, "- clouds not Authorized and Ready at the end of the refresh window, by reason: %s\n", formatCounts(r.CloudNotReadyAfterWindow))
	}
	fmt.Fprintf(w, "- clouds: %d refreshes before the window opened, %d code reuses, %d live refresh tokens upstream after it\n",
		r.CloudConsentRefreshes, r.CloudCodeReuses, r.CloudLiveRefreshTokens)
	fmt.Fprintf(w, "- manager after phase 2c: RSS %s, Go heap in use %s; %d more error lines in its log\n",
		mib(r.CloudRSSAfterBytes), mib(r.CloudHeapAfterBytes), r.CloudLogErrors)
}
