package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/hack/internal/cloud"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/upstream"
	"github.com/credops/thingspace-operator/test/harness"
)

// CloudAuthorizations (phase 2c): one Verizon Cloud app (client id and secret) per CloudAuthorization,
// registered with the simulator through its admin API with the manager's callback URL. Distinct apps
// are the worst case: nothing is shared between objects.

// restartEarlyWindow: after a restart, the refreshes up to this long after the manager is ready are
// compared with the ones due by then. A refresh storm shows there first: shorter than the shortest
// refresh period, so every object owes one refresh at most.
const restartEarlyWindow = 5 * time.Second

// inFlightBound is how long the manager (at the default --upstream-timeout) honours a refresh marker
// left by another process before it counts that refresh as interrupted and asks for consent again.
// After a restart, grants are counted once it has passed: a marker the old process left behind only
// costs the grant then.
const inFlightBound = upstream.DefaultTimeout + 5*time.Second

func cloudName(i int) string { return fmt.Sprintf("cloud-%04d", i) }

// cloudTokensName is the Secret CloudAuthorization i writes.
func cloudTokensName(i int) string { return cloudName(i) + "-tokens" }

// refreshPeriods are the shortest and the longest time the operator plans between two refreshes of
// access tokens living lifetime, renewBefore unset: two thirds of the lifetime, moved earlier by up to
// MaxJitter of it, rounded down to the second. The longest allows a second for the refresh itself.
func refreshPeriods(lifetime time.Duration) (shortest, longest time.Duration) {
	shortest = time.Duration((renewal.DefaultRefreshFraction-renewal.MaxJitter)*float64(lifetime)) - time.Second
	longest = time.Duration(renewal.DefaultRefreshFraction*float64(lifetime)) + time.Second
	return shortest, longest
}

// refreshRatioBounds are the refreshes per object per access-token lifetime the plan allows.
func refreshRatioBounds(lifetime time.Duration) (low, high float64) {
	shortest, longest := refreshPeriods(lifetime)
	return float64(lifetime) / float64(longest), float64(lifetime) / float64(shortest)
}

// listClouds lists the CloudAuthorizations of the benchmark.
func listClouds(ctx context.Context, c client.Client) ([]v1alpha1.CloudAuthorization, error) {
	list := &v1alpha1.CloudAuthorizationList{}
	if err := c.List(ctx, list, client.InNamespace(nsApps)); err != nil {
		return nil, fmt.Errorf("listing CloudAuthorizations: %w", err)
	}
	return list.Items, nil
}

// countClouds is a rollout's countReady over the CloudAuthorizations, by ok.
func countClouds(c client.Client, ok func(*v1alpha1.CloudAuthorization) (bool, string)) func(context.Context) (int, map[string]int, error) {
	return func(ctx context.Context) (int, map[string]int, error) {
		items, err := listClouds(ctx, c)
		if err != nil {
			return 0, nil, err
		}
		ready, why := countReady(len(items), func(i int) (bool, string) { return ok(&items[i]) })
		return ready, why, nil
	}
}

// hasAuthorizationURL: the operator asks for consent (a live consent link in the consent Secret).
func hasAuthorizationURL(ca *v1alpha1.CloudAuthorization) (bool, string) {
	if ca.Status.ConsentStateHash != "" {
		return true, ""
	}
	_, reason := cloud.Condition(ca, v1alpha1.ConditionAuthorized)
	return false, reason
}

// phase2c registers --clouds Cloud apps, creates their credentials Secrets and CloudAuthorizations,
// waits for every authorization URL, has the person follow each one, waits until all are Authorized
// and Ready, counts the code exchanges, then the refreshes over --cloud-window.
func phase2c(ctx context.Context, c client.WithWatch, a *apiCounter, sim *harness.Sim, mgr *harness.Manager, o options, res *Results) error {
	logf("phase 2c: registering %d Verizon Cloud apps with the simulator, callback %s", o.clouds, mgr.CallbackURL)
	keys, secrets := make([]string, o.clouds), make([]string, o.clouds)
	if err := parallel(ctx, o.clouds, o.creators, func(i int) error {
		keys[i], secrets[i] = fmt.Sprintf("bench-cloud-%04d", i), "bench-"+randHex(12)
		return sim.SetCloudApp(keys[i], secrets[i], mgr.CallbackURL)
	}); err != nil {
		return err
	}
	before, err := sim.CloudStats()
	if err != nil {
		return err
	}
	beforeReq, err := sim.Stats()
	if err != nil {
		return err
	}

	// The operator's first part: an authorization URL in every status.
	logf("phase 2c: creating %d credentials Secrets and CloudAuthorizations (access tokens live %s) with %d creators",
		o.clouds, o.cloudLifetime, o.creators)
	record, err := a.mark(ctx, res)
	if err != nil {
		return err
	}
	urlTrack, err := track(ctx, c, &v1alpha1.CloudAuthorizationList{}, func(o runtime.Object) (bool, string) {
		return hasAuthorizationURL(o.(*v1alpha1.CloudAuthorization))
	})
	if err != nil {
		return err
	}
	start := time.Now()
	urls, err := runRollout(ctx, mgr, o, rollout{
		phase: "phase 2c", what: "CloudAuthorizations", state: "with an authorization URL", n: o.clouds, track: urlTrack, name: cloudName,
		create: func(i int) error {
			creds := fmt.Sprintf("cloud-creds-%04d", i)
			if err := createSecret(ctx, c, creds, map[string]string{v1alpha1.CredentialsKeyKey: keys[i], v1alpha1.CredentialsKeySecret: secrets[i]}); err != nil {
				return err
			}
			return create(ctx, c, cloud.New(nsApps, cloudName(i), sim.URL, creds, mgr.CallbackURL, cloudTokensName(i)))
		},
	})
	if err != nil {
		return err
	}
	res.CloudCreateSeconds, res.CloudAllURLs, res.CloudURLsSeconds = urls.createSeconds, urls.allReady, urls.readySeconds
	res.addLatency(urls.latency)

	if err := record("clouds: create → an authorization URL (the consent Secret)", budgetRotation, "cloudauthorizations", o.clouds); err != nil {
		return err
	}
	if record, err = a.mark(ctx, res); err != nil {
		return err
	}

	// The person follows every URL; the operator's callback exchanges each code, its controller takes
	// over from there.
	items, err := listClouds(ctx, c)
	if err != nil {
		return err
	}
	// Read in parallel: one at a time, 10,000 reads took most of a minute.
	links := make([]string, len(items))
	if err := parallel(ctx, len(items), o.creators, func(i int) (err error) {
		links[i], err = harness.ConsentLink(ctx, c, client.ObjectKeyFromObject(&items[i]))
		return err
	}); err != nil {
		return err
	}
	authURL := make(map[string]string, len(items))
	for i := range items {
		authURL[items[i].Name] = links[i]
	}
	person := cloud.NewPerson(sim, o.creators)
	var (
		mu                 sync.Mutex
		pages              = map[string]int{}
		authorize, landing time.Duration
	)
	logf("phase 2c: the person follows every authorization URL with %d browsers", o.creators)
	authTrack, err := track(ctx, c, &v1alpha1.CloudAuthorizationList{}, func(o runtime.Object) (bool, string) {
		return cloud.AuthorizedAndReady(o.(*v1alpha1.CloudAuthorization))
	})
	if err != nil {
		return err
	}
	consentStart := time.Now()
	consent, err := runRollout(ctx, mgr, o, rollout{
		phase: "phase 2c", what: "CloudAuthorizations", did: "consented", state: "Authorized and Ready", n: o.clouds, track: authTrack, name: cloudName,
		create: func(i int) error {
			u := authURL[cloudName(i)]
			if u == "" {
				return nil // no URL to follow: stays unauthorized, and is reported
			}
			v, err := person.Open(ctx, u)
			if err != nil {
				return fmt.Errorf("%s: %w", cloudName(i), err)
			}
			mu.Lock()
			defer mu.Unlock()
			pages[strconv.Itoa(v.Status)]++
			authorize += v.AuthorizeTook
			landing += v.CallbackTook
			return nil
		},
	})
	if err != nil {
		return err
	}
	res.CloudConsentSeconds, res.CloudAuthorizedSeconds = consent.createSeconds, consent.readySeconds
	res.addLatency(consent.latency)
	res.CloudAllAuthorized, res.CloudAuthorizedCount, res.CloudNotAuthorized = consent.allReady, consent.ready, consent.notReady
	res.CloudTotalSeconds = consentStart.Sub(start).Seconds() + consent.readySeconds
	res.CloudCallbackPages = pages
	if n := sum(pages); n > 0 {
		res.CloudAuthorizeLegMillis = float64(authorize.Milliseconds()) / float64(n)
		res.CloudCallbackLegMillis = float64(landing.Milliseconds()) / float64(n)
	}

	// Let stragglers land, then count the consents and open the refresh window.
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	atAuthorized, err := sim.CloudStats()
	if err != nil {
		return err
	}
	// The early consents' refreshes fall in here too (reported with the refreshes before the window).
	if err := record(fmt.Sprintf("clouds: consent → Authorized (%d refreshes meanwhile)", atAuthorized.Refreshes-before.Refreshes), "", "cloudauthorizations", o.clouds); err != nil {
		return err
	}
	if record, err = a.mark(ctx, res); err != nil {
		return err
	}
	res.CloudCodesIssued = atAuthorized.CodesIssued - before.CodesIssued
	res.CloudCodeExchanges = atAuthorized.CodeExchanges - before.CodeExchanges
	res.CloudCodeReuses = atAuthorized.CodeReuses - before.CodeReuses
	res.CloudConsentRefreshes = atAuthorized.Refreshes - before.Refreshes
	logf("phase 2c: %d codes issued, %d exchanged; counting refreshes for %s", res.CloudCodesIssued, res.CloudCodeExchanges, o.cloudWindow)
	after, took, err := over(ctx, o.cloudWindow, sim.CloudStats)
	if err != nil {
		return err
	}
	res.CloudWindowSeconds = took
	res.CloudRefreshes = after.Refreshes - atAuthorized.Refreshes
	if o.cloudWindow > 0 {
		if err := record(fmt.Sprintf("clouds: refresh window (%s), per refresh", o.cloudWindow), budgetRefresh, "cloudauthorizations", res.CloudRefreshes); err != nil {
			return err
		}
	}
	if took > 0 {
		res.CloudRefreshesPerLifetime = float64(res.CloudRefreshes) / float64(o.clouds) / (res.CloudWindowSeconds / o.cloudLifetime.Seconds())
	}
	res.CloudRefreshTokenReuses = after.RefreshTokenReuses - before.RefreshTokenReuses
	res.CloudInvalidGrants = after.InvalidGrants - before.InvalidGrants
	res.CloudLiveRefreshTokens = after.LiveRefreshTokens
	afterReq, err := sim.Stats()
	if err != nil {
		return err
	}
	res.CloudTokenByStatus = diffCounts(afterReq[harness.RouteCloudToken], beforeReq[harness.RouteCloudToken])

	ready, why, err := countClouds(c, cloud.AuthorizedAndReady)(ctx)
	if err != nil {
		return err
	}
	res.CloudReadyAfterWindow = ready
	if ready < o.clouds {
		res.CloudNotReadyAfterWindow = why
	}
	if res.CloudTokensAccepted, err = acceptedCloudTokens(ctx, c, sim, o); err != nil {
		return err
	}
	res.CloudLogErrors = strings.Count(mgr.Logs(), `"level":"error"`) - res.ManagerLogErrors - res.SessionsLogErrors
	res.CloudPeakRSSBytes, res.CloudRSSAfterBytes, res.CloudHeapAfterBytes = readMem(mgr)
	logf("phase 2c: %d refreshes in %s (%.2f per object per lifetime), %d refresh-token reuses, %d invalid grants; %d/%d access tokens accepted; manager peak RSS %s",
		res.CloudRefreshes, secs(res.CloudWindowSeconds), res.CloudRefreshesPerLifetime, res.CloudRefreshTokenReuses, res.CloudInvalidGrants,
		res.CloudTokensAccepted, o.clouds, mib(res.CloudPeakRSSBytes))
	return nil
}

// acceptedCloudTokens reads the access token in every CloudAuthorization's Secret and asks the
// simulator's protected GET /cloud/1/account whether it works, as a workload would. The tokens stay in
// memory.
func acceptedCloudTokens(ctx context.Context, c client.Client, sim *harness.Sim, o options) (int, error) {
	list := &corev1.SecretList{}
	if err := c.List(ctx, list, client.InNamespace(nsApps)); err != nil {
		return 0, err
	}
	byName := make(map[string]string, len(list.Items))
	for _, s := range list.Items {
		byName[s.Name] = string(s.Data[v1alpha1.SecretKeyAccessToken])
	}
	var ok atomic.Int64
	err := parallel(ctx, o.clouds, o.creators, func(i int) error {
		tok := byName[cloudTokensName(i)]
		if tok == "" {
			return nil
		}
		good, err := sim.CloudAccountOK(ctx, tok)
		if good {
			ok.Add(1)
		}
		return err
	})
	return int(ok.Load()), err
}
