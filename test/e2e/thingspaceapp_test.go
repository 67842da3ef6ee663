package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// TestFirstToken: a new ThingSpaceApp gets one token from one upstream call, written to a Secret the
// operator owns, with the status describing it.
func TestFirstToken(t *testing.T) {
	t.Parallel()
	const key = "first-key"
	secret := "first-" + randHex(12)
	sim := newSim(t, longLifetime, key+":"+secret)
	ns := newNamespace(t)
	createCredentials(t, ns, "creds", key, secret)
	createApp(t, harness.NewApp(ns, "app", sim.URL, "creds", "token"))

	app := waitReady(t, ns, "app")
	now := time.Now()

	s := &corev1.Secret{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "token"}, s); err != nil {
		t.Fatalf("get target Secret: %v", err)
	}
	tok, exp := readToken(t, ns, "token")
	if got := string(s.Data[v1alpha1.SecretKeyTokenType]); got != "Bearer" {
		t.Errorf("token_type = %q, want Bearer", got)
	}
	if raw := string(s.Data[v1alpha1.SecretKeyExpiresAt]); !strings.HasSuffix(raw, "Z") || exp.Location() != time.UTC {
		t.Errorf("expires_at = %q, want RFC 3339 in UTC", raw)
	}
	// The simulator's tokens live an hour from issue; the operator counts from before it asked.
	if !exp.After(now) || exp.After(now.Add(time.Hour)) || exp.Before(now.Add(time.Hour-10*time.Second)) {
		t.Errorf("expires_at = %v, want about an hour after %v", exp, now)
	}
	if got := s.Labels[v1alpha1.ManagedByLabel]; got != v1alpha1.ManagedByValue {
		t.Errorf("label %s = %q, want %q", v1alpha1.ManagedByLabel, got, v1alpha1.ManagedByValue)
	}
	ref := metav1.GetControllerOf(s)
	if ref == nil || ref.UID != app.UID || ref.Kind != "ThingSpaceApp" || ref.APIVersion != v1alpha1.GroupVersion.String() {
		t.Errorf("controller reference = %+v, want ThingSpaceApp %s (uid %s)", ref, app.Name, app.UID)
	}

	st := app.Status
	switch {
	case st.ExpiresAt == nil || !st.ExpiresAt.Time.Equal(exp.Truncate(time.Second)):
		// Status times are whole seconds; expires_at carries milliseconds.
		t.Errorf("status.expiresAt = %v, want the Secret's %v to the second", st.ExpiresAt, exp)
	case st.RenewalTime == nil || st.RenewalTime.After(st.ExpiresAt.Time) || !st.RenewalTime.After(now):
		t.Errorf("status.renewalTime = %v, want in the future and not after expiry %v", st.RenewalTime, exp)
	case st.LastRefreshTime == nil || st.LastRefreshTime.After(now) || st.LastRefreshTime.Before(&metav1.Time{Time: now.Add(-time.Minute)}):
		t.Errorf("status.lastRefreshTime = %v, want just before %v", st.LastRefreshTime, now)
	}
	if st.FailedRefreshAttempts != 0 {
		t.Errorf("status.failedRefreshAttempts = %d, want 0", st.FailedRefreshAttempts)
	}

	// One upstream call, and no more once Ready.
	time.Sleep(time.Second)
	if n := calls(t, sim, harness.RouteToken, 0); n != 1 || calls(t, sim, harness.RouteToken, 200) != 1 {
		t.Errorf("token requests = %v, want exactly one, answered 200", stats(t, sim))
	}
	if n := calls(t, sim, harness.RouteRevoke, 0); n != 0 {
		t.Errorf("revoke requests = %d, want 0", n)
	}
	// The simulator hands every client of a key its live token: the Secret's must be it.
	live, _, err := sim.RequestToken(t.Context(), key, secret)
	if err != nil {
		t.Fatalf("ask the simulator for the live token: %v", err)
	}
	if live != tok {
		t.Errorf("the Secret's token is not the one the simulator issued")
	}
}

// TestRotationAtExpiry: without renewBefore the operator replaces the token when it expires (ThingSpace
// returns the same token until then), within two seconds, without a burst of calls, and Ready never
// vouches for an expired token.
func TestRotationAtExpiry(t *testing.T) {
	t.Parallel()
	const (
		key = "rotation-key"
		// Rotations to watch, about one lifetime each.
		rotations = 3
		// The new token must be in the Secret this soon after the old one's expires_at.
		maxLag = 2 * time.Second
		// Ready may lag expiry by one reconcile (the timer fires at expires_at; the operator then calls
		// upstream and writes the Secret or the condition), with room for a loaded machine, not more.
		readyGrace = time.Second
	)
	secret := "rotation-" + randHex(12)
	sim := newSim(t, lifetime.String(), key+":"+secret)
	ns := newNamespace(t)
	createCredentials(t, ns, "creds", key, secret)
	createApp(t, harness.NewApp(ns, "app", sim.URL, "creds", "token"))
	waitReady(t, ns, "app")

	cur, curExp := readToken(t, ns, "token")
	startCalls := calls(t, sim, harness.RouteToken, 0)
	lastCalls := startCalls
	seen := 0
	vouchedExpired := "" // the token Ready was last caught vouching for after its expiry
	deadline := time.Now().Add(time.Duration(rotations+2) * lifetime)
	for seen < rotations {
		now := time.Now()
		if now.After(deadline) {
			t.Fatalf("saw %d rotations in %v, want %d", seen, time.Duration(rotations+2)*lifetime, rotations)
		}
		s := &corev1.Secret{}
		if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "token"}, s); err != nil {
			t.Fatalf("get Secret: %v", err)
		}
		app := getApp(t, ns, "app")
		tok := string(s.Data[v1alpha1.SecretKeyAccessToken])
		exp, err := time.Parse(time.RFC3339, string(s.Data[v1alpha1.SecretKeyExpiresAt]))
		if err != nil || tok == "" {
			t.Fatalf("Secret lost its token or expires_at: %v", err)
		}
		sensitive.Add("a token", tok)

		if tok != cur {
			seen++
			n := calls(t, sim, harness.RouteToken, 0)
			t.Logf("rotation %d: new token seen %v after the old one's expires_at; %d token request(s) for it; new expires_at %s",
				seen, now.Sub(curExp).Round(10*time.Millisecond), n-lastCalls, exp.Format(time.RFC3339Nano))
			// The expiry estimate may be early by up to a second (the simulator rounds expires_in down
			// on a repeated request; an estimate taken before the request is early by its latency), so
			// the first call at expires_at may still get the old token back: one extra call per
			// lifetime is allowed, no more.
			if n-lastCalls > 2 {
				t.Errorf("rotation %d took %d token requests, want at most 2: %v", seen, n-lastCalls, stats(t, sim))
			}
			if !exp.After(curExp) {
				t.Errorf("rotation %d: new expires_at %v is not after the old %v", seen, exp, curExp)
			}
			cur, curExp, lastCalls = tok, exp, n
		} else if now.After(curExp.Add(maxLag)) {
			t.Fatalf("the Secret still holds the token that expired at %v, %v later (want a new one within %v); status: %s",
				curExp.Format(time.RFC3339), now.Sub(curExp).Round(10*time.Millisecond), maxLag, describe(app))
		}
		// The app was read after the Secret: if it still vouches for this very token (same expiry, to
		// the second of status times) after it has expired, a workload trusting Ready gets a dead token.
		if ready, _ := harness.Ready(app); ready && app.Status.ExpiresAt != nil && app.Status.ExpiresAt.Time.Equal(exp.Truncate(time.Second)) &&
			now.After(exp.Add(readyGrace)) && vouchedExpired != tok {
			vouchedExpired = tok
			t.Errorf("Ready=True while the Secret's token expired %v ago (at %s)", now.Sub(exp).Round(10*time.Millisecond), exp.Format(time.RFC3339Nano))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := calls(t, sim, harness.RouteToken, 0) - startCalls; n > 2*rotations {
		t.Errorf("%d token requests over %d lifetimes, want at most %d: %v", n, rotations, 2*rotations, stats(t, sim))
	}
	if n := calls(t, sim, harness.RouteRevoke, 0); n != 0 {
		t.Errorf("revoke requests = %d, want 0: without renewBefore nothing is revoked", n)
	}
}

// TestManualRefresh: a new value of the refresh-requested annotation revokes the token and fetches a
// new one, once; the same value again does nothing.
func TestManualRefresh(t *testing.T) {
	t.Parallel()
	const key = "manual-key"
	secret := "manual-" + randHex(12)
	sim := newSim(t, longLifetime, key+":"+secret) // no expiry during the test: every call is ours
	ns := newNamespace(t)
	createCredentials(t, ns, "creds", key, secret)
	createApp(t, harness.NewApp(ns, "app", sim.URL, "creds", "token"))
	waitReady(t, ns, "app")
	tok0, _ := readToken(t, ns, "token")

	// Counts are checked cumulatively, after a pause for a follow-up reconcile to show its calls, so an
	// extra refresh is caught even when it lands late.
	wantTokens, wantRevokes := 1, 0
	checkCalls := func(when string) {
		t.Helper()
		time.Sleep(300 * time.Millisecond)
		tokens, revokes := calls(t, sim, harness.RouteToken, 0), calls(t, sim, harness.RouteRevoke, 0)
		if tokens != wantTokens || revokes != wantRevokes {
			t.Errorf("%s: %d token and %d revoke requests more than expected: %v",
				when, tokens-wantTokens, revokes-wantRevokes, stats(t, sim))
		}
		wantTokens, wantRevokes = tokens, revokes // report each surplus once
	}
	refresh := func(value string, old string) string {
		t.Helper()
		patchAnnotations(t, ns, "app", map[string]string{v1alpha1.RefreshRequestedAnnotation: value})
		waitApp(t, ns, "app", 15*time.Second, "refresh request "+value+" acted on", func(app *v1alpha1.ThingSpaceApp) bool {
			return app.Status.ObservedRefreshRequest == value
		})
		waitReady(t, ns, "app")
		tok, _ := readToken(t, ns, "token")
		if tok == old {
			t.Fatalf("refresh %s: the Secret still holds the old token", value)
		}
		// One revoke of the old token, one request for the new one.
		wantTokens, wantRevokes = wantTokens+1, wantRevokes+1
		checkCalls("after refresh " + value)
		return tok
	}
	tok1 := refresh("r1", tok0)

	// The same value again, with another annotation changed so that the operator does reconcile.
	patchAnnotations(t, ns, "app", map[string]string{v1alpha1.RefreshRequestedAnnotation: "r1", "e2e.credops.io/touch": "1"})
	time.Sleep(1500 * time.Millisecond)
	if tok, _ := readToken(t, ns, "token"); tok != tok1 {
		t.Errorf("the same refresh value again replaced the token")
	}
	checkCalls("after the same refresh value again")

	// Every new value triggers exactly one refresh. A few rounds: a second refresh slipping in (a
	// follow-up reconcile acting on the request again) depends on timing.
	last := tok1
	for i := 2; i <= 10; i++ {
		last = refresh(fmt.Sprintf("r%d", i), last)
	}
	live, _, err := sim.RequestToken(t.Context(), key, secret)
	if err != nil {
		t.Fatalf("ask the simulator for the live token: %v", err)
	}
	if live != last {
		t.Errorf("the Secret's token is not the simulator's live token after the refreshes")
	}
}
