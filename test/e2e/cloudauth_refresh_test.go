package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// --- 2. Rotation with no invalid moment ---

// TestCloudRotationNeverInvalid: with 4-second access tokens, the Secret's access token, read every
// 100 ms for more than three lifetimes, is accepted by the simulator every time; the refreshes happen
// ahead of expiry, several times, without a refresh token ever being presented twice.
func TestCloudRotationNeverInvalid(t *testing.T) {
	t.Parallel()
	const (
		life   = 4 * time.Second
		window = 3*life + time.Second
	)
	e := newCloudEnv(t, cloudOpts{access: life})
	e.consent()
	before := e.stats()

	seen := map[string]bool{}
	checks, invalid, notReady := 0, 0, 0
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		ct := e.tokens()
		seen[ct.access] = true
		checks++
		if !e.accountOK(ct.access) {
			invalid++
			if invalid <= 3 {
				t.Errorf("the Secret's access token (expires_at %s) was refused at %s; %s",
					ct.expiresRaw, time.Now().UTC().Format(time.RFC3339Nano), describeCloud(e.get()))
			}
		}
		if ca := e.get(); !hasCondition(ca, v1alpha1.ConditionReady, metav1.ConditionTrue, "") {
			notReady++
			if notReady <= 3 {
				t.Errorf("Ready not True during rotation: %s", describeCloud(ca))
			}
		}
	}
	st := e.checkNoReuse("after the rotations")
	refreshes := st.Refreshes - before.Refreshes
	t.Logf("%d checks over %v: %d distinct access tokens, %d refreshes, %d refused", checks, window, len(seen), refreshes, invalid)
	if invalid > 0 {
		t.Errorf("%d of %d checks found an access token the simulator refused", invalid, checks)
	}
	if refreshes < 2 {
		t.Errorf("%d refreshes over %v of %v tokens, want at least 2", refreshes, window, life)
	}
	// Refreshing at about two thirds of the lifetime means one refresh every 1-3 s; more than one a
	// second on average is a loop.
	if maxN := int(window / time.Second); refreshes > maxN {
		t.Errorf("%d refreshes over %v, want at most %d", refreshes, window, maxN)
	}
	if len(seen) < 3 {
		t.Errorf("the Secret showed %d distinct access tokens, want at least 3", len(seen))
	}
	if n := e.tokenRequests(0) - e.tokenRequests(http.StatusOK); n != 0 {
		t.Errorf("%d token requests failed: %v", n, stats(t, e.sim))
	}
	if len(e.events(v1alpha1.EventRefreshed)) == 0 {
		t.Errorf("no Normal event Refreshed after %d refreshes", refreshes)
	}
}

// --- 3. Restarts in the middle of a refresh ---

// midRefresh sets up a consented CloudAuthorization, makes the simulator hold its token answers for
// hold (it rotates first), asks for a refresh and returns once the simulator has rotated the refresh
// token while the manager still waits for the answer. It returns the tokens from before the refresh and
// the stats from just before it.
func midRefresh(t *testing.T, e *cloudEnv, hold time.Duration, request string) (cloudTokens, harness.CloudStats) {
	t.Helper()
	// Whatever happens below, the suite keeps a running manager.
	t.Cleanup(func() {
		if !mgr.Running() {
			if err := mgr.Start(context.Background()); err != nil {
				t.Errorf("start the manager again: %v", err)
			}
		}
	})
	e.consent()
	old := e.tokens()
	before := e.stats()
	if err := e.sim.SetCloudTokenDelay(hold); err != nil {
		t.Fatalf("set the token delay: %v", err)
	}
	e.requestRefresh(request)
	e.waitRefreshes(before.Refreshes+1, cloudWait)
	// The marker must have been written (and confirmed) before the refresh token was sent.
	ct, _, _ := e.readSecret()
	if _, ok := ct.annotations[v1alpha1.RefreshStartedAnnotation]; !ok {
		t.Errorf("the simulator rotated the refresh token but the Secret carries no %s", v1alpha1.RefreshStartedAnnotation)
	}
	if ct.refresh != old.refresh {
		t.Fatalf("the Secret's refresh token changed before the answer was released")
	}
	return old, before
}

// TestCloudRestartMidRefreshSIGTERM: a SIGTERM while a refresh is in flight lets it complete and be
// stored before the manager exits; after the restart the stored refresh token works and nothing was sent
// twice. Serial: it restarts the suite's manager.
func TestCloudRestartMidRefreshSIGTERM(t *testing.T) {
	const hold = 2 * time.Second
	e := newCloudEnv(t, cloudOpts{})
	old, before := midRefresh(t, e, hold, "sigterm")

	stopping := time.Now()
	if err := mgr.Stop(); err != nil {
		t.Errorf("the manager did not shut down cleanly: %v", err)
	}
	t.Logf("the manager exited %v after SIGTERM (the answer was held %v)", time.Since(stopping).Round(10*time.Millisecond), hold)

	// Before anything restarts: the answer of the refresh in flight is in the Secret.
	ct, _, ok := e.readSecret()
	switch {
	case !ok:
		t.Fatalf("the Secret is gone")
	case ct.refresh == "" || ct.refresh == old.refresh:
		t.Errorf("after SIGTERM the Secret holds %s refresh token, want the rotated one",
			map[bool]string{true: "no", false: "the old (rotated, now dead)"}[ct.refresh == ""])
	case ct.access == old.access:
		t.Errorf("after SIGTERM the Secret still holds the old access token")
	}
	if _, marked := ct.annotations[v1alpha1.RefreshStartedAnnotation]; marked {
		t.Errorf("after SIGTERM the Secret still carries %s: the answer was not stored", v1alpha1.RefreshStartedAnnotation)
	}
	if ct.access != "" && !e.accountOK(ct.access) {
		t.Errorf("the access token stored at SIGTERM is refused by the simulator")
	}

	if err := e.sim.SetCloudTokenDelay(0); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(t.Context()); err != nil {
		t.Fatalf("restart the manager: %v", err)
	}
	e.waitReady()
	time.Sleep(2 * time.Second) // room for a stray refresh after the restart
	st := e.checkNoReuse("after the SIGTERM restart")
	if n := st.Refreshes - before.Refreshes; n != 1 {
		t.Errorf("%d refreshes for one refresh request across the SIGTERM restart, want exactly 1 (was the request acted on again after the restart? %s)",
			n, describeCloud(e.get()))
	}
	if st.LiveRefreshTokens != 1 {
		t.Errorf("%d live refresh tokens at the simulator, want 1", st.LiveRefreshTokens)
	}

	// The stored refresh token is the live one: one more refresh works, with no reuse.
	now := e.tokens()
	e.requestRefresh("after-sigterm")
	e.wait(cloudWait, "refresh request after-sigterm acted on", func(ca *v1alpha1.CloudAuthorization) bool {
		return ca.Status.ObservedRefreshRequest == "after-sigterm"
	})
	e.waitReady()
	after := e.tokens()
	if after.refresh == now.refresh || after.access == now.access {
		t.Errorf("the refresh after the restart did not rotate the tokens")
	}
	if !e.accountOK(after.access) {
		t.Errorf("the access token after the restart is refused")
	}
	e.checkNoReuse("after a refresh following the SIGTERM restart")
}

// TestCloudRestartMidRefreshSIGKILL: a manager killed while a refresh is in flight leaves the
// refresh-started-at marker; the restarted manager does not send that (already rotated) refresh token
// again but reports ReauthorizationRequired with a new consent link, after at most the in-flight
// bound (--upstream-timeout + 5s). A new consent recovers. Serial: it kills the suite's manager.
func TestCloudRestartMidRefreshSIGKILL(t *testing.T) {
	const hold = 2 * time.Second
	e := newCloudEnv(t, cloudOpts{})
	consentURL := e.waitURL()
	old, before := midRefresh(t, e, hold, "sigkill")

	if err := mgr.Kill(); err != nil {
		t.Errorf("kill the manager: %v", err)
	}
	killed := time.Now()
	ct, _, _ := e.readSecret()
	marker, marked := ct.annotations[v1alpha1.RefreshStartedAnnotation]
	if !marked || ct.refresh != old.refresh {
		t.Fatalf("after SIGKILL: marker present=%v, refresh token unchanged=%v; want the marker and the old refresh token", marked, ct.refresh == old.refresh)
	}
	markedAt, err := time.Parse(time.RFC3339Nano, marker)
	if err != nil {
		t.Errorf("%s = %q is not RFC 3339: %v", v1alpha1.RefreshStartedAnnotation, marker, err)
		markedAt = killed
	}
	// The held answer goes nowhere; the rotated refresh token in the Secret is dead.
	time.Sleep(hold)
	if err := e.sim.SetCloudTokenDelay(0); err != nil {
		t.Fatal(err)
	}
	tokensAtKill := e.tokenRequests(0)

	if err := mgr.Start(t.Context()); err != nil {
		t.Fatalf("restart the manager: %v", err)
	}
	ca := e.waitAuthorized(metav1.ConditionFalse, v1alpha1.ReasonReauthorizationRequired, inFlightBound+cloudWait)
	t.Logf("ReauthorizationRequired %v after the marker was written (in-flight bound %v), %v after the kill",
		time.Since(markedAt).Round(10*time.Millisecond), inFlightBound, time.Since(killed).Round(10*time.Millisecond))
	if hasCondition(ca, v1alpha1.ConditionReady, metav1.ConditionTrue, "") {
		t.Errorf("Ready=True without a refresh token: %s", describeCloud(ca))
	}
	newURL := e.waitURL(consentURL)
	if newURL == consentURL {
		t.Errorf("the consent link was not replaced")
	}
	ct, _, _ = e.readSecret()
	if ct.refresh != "" {
		t.Errorf("the grant Secret still holds the refresh token whose refresh was interrupted")
	}
	if _, ok := ct.annotations[v1alpha1.RefreshStartedAnnotation]; ok {
		t.Errorf("the Secret still carries %s after ReauthorizationRequired", v1alpha1.RefreshStartedAnnotation)
	}
	if len(e.events(v1alpha1.ReasonReauthorizationRequired)) == 0 {
		t.Errorf("no %s event", v1alpha1.ReasonReauthorizationRequired)
	}

	time.Sleep(2 * time.Second) // room for a stray refresh
	st := e.checkNoReuse("after the SIGKILL restart")
	if n := e.tokenRequests(0) - tokensAtKill; n != 0 {
		t.Errorf("%d token requests after the restart, want none: the interrupted refresh token must never be sent again: %v", n, stats(t, e.sim))
	}
	if n := st.Refreshes - before.Refreshes; n != 1 {
		t.Errorf("%d refreshes, want exactly the interrupted one", n)
	}

	// A person consents again: authorized anew.
	b := e.browse(newURL)
	if b.status != http.StatusOK {
		t.Fatalf("consent after ReauthorizationRequired: callback status %d: %.300s", b.status, b.body)
	}
	e.waitReady()
	if now := e.tokens(); !e.accountOK(now.access) {
		t.Errorf("the access token after the new consent is refused")
	}
	e.checkNoReuse("after the new consent")
}

// --- 6. Keep-alive ---

// TestCloudKeepAlive: with hour-long access tokens and refreshTokenKeepAlive 2s, the operator refreshes
// about every 2 seconds anyway (the keep-alive time is taken to the whole second, so 1-2 s apart), each
// refresh with the latest refresh token.
func TestCloudKeepAlive(t *testing.T) {
	t.Parallel()
	const (
		keepAlive = 2 * time.Second
		window    = 8 * time.Second
		// Generous: one refresh every 1-2 s gives 4-8 in the window.
		minRefreshes, maxRefreshes = 3, 10
	)
	e := newCloudEnv(t, cloudOpts{mutate: func(ca *v1alpha1.CloudAuthorization) {
		ca.Spec.RefreshTokenKeepAlive = &metav1.Duration{Duration: keepAlive}
	}})
	e.consent()
	before := e.stats()
	time.Sleep(window)
	st := e.checkNoReuse("after the keep-alive refreshes")
	n := st.Refreshes - before.Refreshes
	t.Logf("%d keep-alive refreshes in %v (keep-alive %v)", n, window, keepAlive)
	if n < minRefreshes || n > maxRefreshes {
		t.Errorf("%d refreshes in %v with refreshTokenKeepAlive %v and hour-long access tokens, want %d-%d",
			n, window, keepAlive, minRefreshes, maxRefreshes)
	}
	ca := e.waitReady()
	ct := e.tokens()
	if !e.accountOK(ct.access) {
		t.Errorf("the Secret's access token is refused after the keep-alive refreshes")
	}
	if st.LiveRefreshTokens != 1 {
		t.Errorf("%d live refresh tokens at the simulator, want 1", st.LiveRefreshTokens)
	}
	if ca.Status.RenewalTime == nil || ca.Status.RenewalTime.After(time.Now().Add(keepAlive+time.Second)) {
		t.Errorf("status.renewalTime = %v, want within the keep-alive", ca.Status.RenewalTime)
	}
}

// --- 7. Revoked refresh token ---

// TestCloudRevokedRefreshToken: after the person removes the app (the simulator revokes the grant), the
// next refresh is refused once; the operator reports ReauthorizationRequired with a new authorization
// URL and does not try again. A new consent recovers.
func TestCloudRevokedRefreshToken(t *testing.T) {
	t.Parallel()
	e := newCloudEnv(t, cloudOpts{})
	consentURL := e.waitURL()
	e.consent()
	old := e.tokens()
	if n, err := e.sim.RevokeCloudGrants(e.key); err != nil || n != 1 {
		t.Fatalf("revoke: %d grants ended (want 1), %v", n, err)
	}
	requests, refused := e.tokenRequests(0), e.tokenRequests(http.StatusUnauthorized)
	before := e.stats()

	e.requestRefresh("after-revoke")
	ca := e.waitAuthorized(metav1.ConditionFalse, v1alpha1.ReasonReauthorizationRequired, cloudWait)
	if hasCondition(ca, v1alpha1.ConditionReady, metav1.ConditionTrue, "") {
		t.Errorf("Ready=True with a revoked grant: %s", describeCloud(ca))
	}
	newURL := e.waitURL(consentURL)
	if ct, _, _ := e.readSecret(); ct.refresh != "" {
		t.Errorf("the Secret still holds the refused refresh token")
	}

	time.Sleep(3 * time.Second) // a retry loop would show here
	st := e.stats()
	if n, r := e.tokenRequests(0)-requests, e.tokenRequests(http.StatusUnauthorized)-refused; n != 1 || r != 1 {
		t.Errorf("%d token requests (%d refused with 401) after the revocation, want exactly one, refused: %v", n, r, stats(t, e.sim))
	}
	if st.InvalidGrants-before.InvalidGrants != 1 || st.RefreshTokenReuses != 0 || st.Refreshes != before.Refreshes {
		t.Errorf("cloud stats %+v (before %+v): want one invalid_grant, no reuse, no refresh", st, before)
	}
	if e.accountOK(old.access) {
		t.Errorf("the simulator still accepts the revoked grant's access token")
	}

	b := e.browse(newURL)
	if b.status != http.StatusOK {
		t.Fatalf("consent after the revocation: status %d: %.300s", b.status, b.body)
	}
	e.waitReady()
	if !e.accountOK(e.tokens().access) {
		t.Errorf("the access token of the new consent is refused")
	}
}
