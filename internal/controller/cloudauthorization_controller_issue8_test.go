package controller

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// cloudEvents counts the events with reason on the CloudAuthorization name.
func (f *fixture) cloudEvents(name, reason string) int {
	f.t.Helper()
	evs := &corev1.EventList{}
	must(f.t, k8s.List(context.Background(), evs, client.InNamespace(f.ns)))
	n := 0
	for _, e := range evs.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			n++
		}
	}
	return n
}

// waitCloudEvent waits for an event with reason on the CloudAuthorization name.
func (f *fixture) waitCloudEvent(name, reason string, within time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for f.cloudEvents(name, reason) == 0 {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s/%s: no %s event", f.ns, name, reason)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// requestCloudRefresh sets a new refresh request on the CloudAuthorization.
func (f *fixture) requestCloudRefresh(name, value string) {
	f.t.Helper()
	ca := f.getCloud(name)
	patch := client.MergeFrom(ca.DeepCopy())
	if ca.Annotations == nil {
		ca.Annotations = map[string]string{}
	}
	ca.Annotations[v1alpha1.RefreshRequestedAnnotation] = value
	must(f.t, k8s.Patch(context.Background(), ca, patch))
}

// neverReauthorizes fails the test if the CloudAuthorization says ReauthorizationRequired within d.
func (f *fixture) neverReauthorizes(name string, d time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c := meta.FindStatusCondition(f.getCloud(name).Status.Conditions, v1alpha1.ConditionAuthorized)
		if c != nil && c.Reason == v1alpha1.ReasonReauthorizationRequired {
			f.t.Fatalf("%s/%s: the grant was dropped: %s", f.ns, name, c.Message)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitRefreshes waits until the simulator counted n refreshes in all.
func (f *fixture) waitRefreshes(n int, within time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for f.sim.CloudStats().Refreshes < n {
		if time.Now().After(deadline) {
			f.t.Fatalf("%d refreshes, want %d", f.sim.CloudStats().Refreshes, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Issue 8 scenario 7: a 2xx whose expires_in is missing (or absurd) carries a rotated refresh token:
// it is stored, the lifetime is assumed (or capped) and a warning says so.
func TestIssue8Scenario7RefreshWithoutLifetimeIsStoredAndWarned(t *testing.T) {
	for _, tc := range []struct {
		shape  simulator.CloudTokenShape
		reason string
	}{
		{simulator.CloudShapeNoExpiresIn, v1alpha1.EventLifetimeAssumed},
		{simulator.CloudShapeHugeExpiresIn, v1alpha1.EventLifetimeCapped}, // scenario 18
	} {
		t.Run(string(tc.shape), func(t *testing.T) {
			f := newCloudFixture(t, time.Hour)
			f.credentials("creds", f.key, f.secret)
			f.cloudAuth("photos")
			f.authorizeCloud("photos")
			before := f.cloudSecret("photos-grant")
			f.sim.SetCloudTokenShape(tc.shape)
			f.requestCloudRefresh("photos", "1")
			f.waitRefreshes(1, 10*time.Second)
			f.waitCloudEvent("photos", tc.reason, 10*time.Second)
			f.neverReauthorizes("photos", time.Second)
			s := f.cloudSecret("photos-grant")
			if string(s.Data[KeyRefreshToken]) == string(before.Data[KeyRefreshToken]) || !f.sim.ValidCloudAccessToken(string(s.Data[KeyAccessToken])) {
				t.Fatal("the rotated tokens were not stored")
			}
			ca := f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 5*time.Second)
			if exp := ca.Status.ExpiresAt.Time; exp.After(time.Now().Add(24*time.Hour+time.Minute)) || exp.Before(time.Now().Add(5*time.Minute)) {
				t.Fatalf("expiresAt %v: want the assumed or capped lifetime", exp)
			}
		})
	}
}

// Issue 8 scenario 7: a 2xx with an unusable access token but a good rotated refresh token keeps
// the grant: the refresh token is stored and used for the next refresh. Code exchange too.
func TestIssue8Scenario7UnusableAccessTokenKeepsTheRotatedRefreshToken(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	f.cloudAuth("photos")
	f.authorizeCloud("photos")
	f.sim.SetCloudTokenShape(simulator.CloudShapeBadAccessToken)
	f.requestCloudRefresh("photos", "1")
	f.waitRefreshes(1, 10*time.Second)
	f.sim.SetCloudTokenShape(simulator.CloudShapeNormal)
	f.neverReauthorizes("photos", 2*time.Second)
	f.waitRefreshes(2, 10*time.Second)
	f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	if got := f.sim.CloudStats(); got.RefreshTokenReuses != 0 || got.InvalidGrants != 0 {
		t.Fatalf("%+v", got)
	}

	// The code exchange: the refresh token from a 2xx with a bad access token is stored.
	f.cloudAuth("music")
	f.waitCloud("music", v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending, 10*time.Second)
	u := f.waitURL("music", "")
	f.sim.SetCloudTokenShape(simulator.CloudShapeBadAccessToken)
	loc := browserConsent(t, u)
	land(t, loc)
	f.sim.SetCloudTokenShape(simulator.CloudShapeNormal)
	f.waitCloud("music", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	if got := f.sim.CloudStats(); got.RefreshTokenReuses != 0 || got.InvalidGrants != 0 || got.CodeExchanges != 2 {
		t.Fatalf("%+v", got)
	}
}

// Issue 8 scenario 8 (a failed marker clear after a 503 must not cost the grant): on the fake clock,
// internal/controller/fakeclock TestIssue8Scenario8FailedMarkerClearOnTheFakeClock.

// Issue 8 scenario 10: a 403 without invalid_grant, or another ambiguous 4xx, is not a verdict on the
// credentials: back off and retry; only invalid_client stops.
func TestIssue8Scenario10AmbiguousRefreshRefusalsAreRetried(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	for i, tc := range []struct {
		status int
		code   string
	}{
		{http.StatusForbidden, ""},
		{http.StatusBadRequest, "invalid_request"},
		{http.StatusBadRequest, "unauthorized_client"},
		{http.StatusNotFound, ""},
	} {
		name := fmt.Sprintf("c%d", i)
		f.cloudAuth(name)
		f.authorizeCloud(name)
		refreshes := f.sim.CloudStats().Refreshes
		f.sim.FailCloudTokenRequests(2, tc.status, tc.code)
		f.requestCloudRefresh(name, "1")
		c := f.waitCloudReason(name, v1alpha1.ConditionReady, 10*time.Second, v1alpha1.ReasonRefreshFailing, v1alpha1.ReasonCredentialsRejected, v1alpha1.ReasonRequestInvalid)
		if c.Reason != v1alpha1.ReasonRefreshFailing {
			t.Fatalf("%d %s: Ready %s/%s: %s", tc.status, tc.code, c.Status, c.Reason, c.Message)
		}
		f.waitRefreshes(refreshes+1, 15*time.Second)
		f.waitCloud(name, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	}

	// invalid_client is unambiguous: it stops until the credentials change.
	f.cloudAuth("stops")
	f.authorizeCloud("stops")
	refreshes := f.sim.CloudStats().Refreshes
	f.sim.FailCloudTokenRequests(1, http.StatusUnauthorized, "invalid_client")
	f.requestCloudRefresh("stops", "1")
	f.waitCloud("stops", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonCredentialsRejected, 10*time.Second)
	n := f.sim.Stats().Count("POST /cloud/1/oauth2/token", http.StatusUnauthorized)
	time.Sleep(2 * time.Second)
	if got := f.sim.Stats().Count("POST /cloud/1/oauth2/token", http.StatusUnauthorized); got != n || f.sim.CloudStats().Refreshes != refreshes {
		t.Fatalf("rejected credentials were retried: %d then %d", n, got)
	}
}

// waitCloudReason waits until condition typ has one of reasons and returns it.
func (f *fixture) waitCloudReason(name, typ string, within time.Duration, reasons ...string) *metav1.Condition {
	f.t.Helper()
	var last *metav1.Condition
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		last = meta.FindStatusCondition(f.getCloud(name).Status.Conditions, typ)
		if last != nil && slices.Contains(reasons, last.Reason) {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.t.Fatalf("%s/%s: %s never had a reason in %v; last: %+v", f.ns, name, typ, reasons, last)
	return nil
}

// Issue 8 scenario 10, the keep-alive deadline at risk: on the fake clock, in
// internal/controller/fakeclock (TestIssue8Scenario10KeepAliveDeadlineAtRiskOnTheFakeClock).
