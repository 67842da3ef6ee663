package policy

import (
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/cloudapi"
	"github.com/credops/thingspace-operator/internal/refreshes"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/upstream"
)

var c0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// held is a CloudInput for a Secret with a refresh token and an access token issued at c0 for an hour,
// looked at now.
func held(now time.Time) CloudInput {
	return CloudInput{
		Generation: 1, KeepAlive: 168 * time.Hour, Status: &v1alpha1.CloudAuthorizationStatus{},
		HasRefreshToken: true, AccessToken: true, IssuedAt: c0, ExpiresAt: c0.Add(time.Hour),
		InFlightBound: 35 * time.Second, Now: now,
	}
}

func TestDecideCloud(t *testing.T) {
	readyCond := []metav1.Condition{{Type: v1alpha1.ConditionReady, ObservedGeneration: 1}}
	tests := []struct {
		name   string
		in     func() CloudInput
		action CloudAction
		at     time.Time
		check  func(*testing.T, CloudDecision)
	}{
		{name: "valid token: keep until 2/3 of the lifetime", in: func() CloudInput { return held(c0.Add(time.Minute)) },
			action: CloudKeep, at: c0.Add(40 * time.Minute),
			check: func(t *testing.T, d CloudDecision) {
				if d.Ready == nil || d.Ready.Reason != v1alpha1.ReasonTokenValid {
					t.Errorf("Ready %+v", d.Ready)
				}
			}},
		{name: "planned time reached: refresh", in: func() CloudInput { return held(c0.Add(40 * time.Minute)) }, action: CloudRefresh},
		{name: "no access token: refresh", in: func() CloudInput {
			in := held(c0)
			in.AccessToken = false
			return in
		}, action: CloudRefresh},
		{name: "keep-alive earlier than the lifetime", in: func() CloudInput {
			in := held(c0)
			in.KeepAlive, in.ExpiresAt = time.Hour, c0.Add(48*time.Hour)
			return in
		}, action: CloudKeep, at: c0.Add(time.Hour)},
		{name: "status plan kept for the same token and generation", in: func() CloudInput {
			in := held(c0.Add(time.Minute))
			in.Status.RenewalTime, in.Status.ExpiresAt, in.Status.Conditions = mt(c0.Add(37*time.Minute)), mt(c0.Add(time.Hour)), readyCond
			return in
		}, action: CloudKeep, at: c0.Add(37 * time.Minute)},
		{name: "expires_in 0: never a refresh per reconcile", in: func() CloudInput {
			in := held(c0.Add(time.Second))
			in.ExpiresAt = c0
			return in
		}, action: CloudKeep, at: c0.Add(MinCloudRefreshInterval), check: func(t *testing.T, d CloudDecision) {
			if d.Ready != nil {
				t.Errorf("Ready flaps: %+v", d.Ready)
			}
		}},
		{name: "expires_in 0: refreshed once the least interval passed", in: func() CloudInput {
			in := held(c0.Add(MinCloudRefreshInterval))
			in.ExpiresAt = c0
			return in
		}, action: CloudRefresh},
		{name: "expired token of unknown age: refresh", in: func() CloudInput {
			in := held(c0.Add(2 * time.Hour))
			in.IssuedAt = time.Time{}
			return in
		}, action: CloudRefresh},
		{name: "refresh request", in: func() CloudInput {
			in := held(c0.Add(time.Minute))
			in.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "2"}
			in.Status.ObservedRefreshRequest = "1"
			return in
		}, action: CloudRefresh, check: func(t *testing.T, d CloudDecision) {
			if d.ObserveRequest != "2" {
				t.Errorf("ObserveRequest %q", d.ObserveRequest)
			}
		}},
		{name: "refresh request already observed", in: func() CloudInput {
			in := held(c0.Add(time.Minute))
			in.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "1"}
			in.Status.ObservedRefreshRequest = "1"
			return in
		}, action: CloudKeep},
		{name: "failure: wait for the slot even with a request", in: func() CloudInput {
			in := held(c0.Add(time.Minute))
			in.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "2"}
			in.Status.FailedRefreshAttempts, in.Status.RenewalTime = 1, mt(c0.Add(2*time.Minute))
			return in
		}, action: CloudWaitForSlot, at: c0.Add(2 * time.Minute), check: func(t *testing.T, d CloudDecision) {
			if d.Ready != nil {
				t.Errorf("Ready changed while the token is valid: %+v", d.Ready)
			}
		}},
		{name: "failure, token expired: wait, Ready False", in: func() CloudInput {
			in := held(c0.Add(2 * time.Hour))
			in.Status.FailedRefreshAttempts, in.Status.RenewalTime = 3, mt(c0.Add(3*time.Hour))
			return in
		}, action: CloudWaitForSlot, at: c0.Add(3 * time.Hour), check: func(t *testing.T, d CloudDecision) {
			if d.Ready == nil || d.Ready.Reason != v1alpha1.ReasonUpstreamUnavailable {
				t.Errorf("Ready %+v", d.Ready)
			}
		}},
		{name: "failure, slot reached: refresh", in: func() CloudInput {
			in := held(c0.Add(2 * time.Minute))
			in.Status.FailedRefreshAttempts, in.Status.RenewalTime = 1, mt(c0.Add(2*time.Minute))
			return in
		}, action: CloudRefresh},
		{name: "credentials still rejected: wait for a change", in: func() CloudInput {
			in := held(c0.Add(time.Minute))
			in.CredentialsVersion, in.Status.RejectedCredentialsVersion, in.Status.Conditions = "7", "7", readyCond
			return in
		}, action: CloudWaitForChange},
		{name: "credentials changed: the refusal is cleared", in: func() CloudInput {
			in := held(c0.Add(time.Minute))
			in.CredentialsVersion, in.Status.RejectedCredentialsVersion, in.Status.Conditions = "8", "7", readyCond
			return in
		}, action: CloudKeep, check: func(t *testing.T, d CloudDecision) {
			if !d.ClearRejected {
				t.Error("refusal not cleared")
			}
		}},
		{name: "no refresh token: consent, the request is moot", in: func() CloudInput {
			in := held(c0)
			in.HasRefreshToken = false
			in.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "5"}
			return in
		}, action: CloudAwaitConsent, check: func(t *testing.T, d CloudDecision) {
			if d.ObserveRequest != "5" {
				t.Errorf("ObserveRequest %q", d.ObserveRequest)
			}
		}},
		{name: "foreign marker within its bound: wait", in: func() CloudInput {
			in := held(c0.Add(10 * time.Second))
			in.Marker = &CloudMarker{Value: "m", Started: c0}
			return in
		}, action: CloudWaitForMarker, at: c0.Add(35 * time.Second)},
		{name: "foreign marker past its bound: reauthorize", in: func() CloudInput {
			in := held(c0.Add(35 * time.Second))
			in.Marker = &CloudMarker{Value: "m", Started: c0}
			return in
		}, action: CloudReauthorize, check: func(t *testing.T, d CloudDecision) {
			if !strings.Contains(d.Why, "interrupted") {
				t.Errorf("Why %q", d.Why)
			}
		}},
		{name: "unreadable marker: reauthorize", in: func() CloudInput {
			in := held(c0)
			in.Marker = &CloudMarker{Value: "garbage"}
			return in
		}, action: CloudReauthorize},
		// Issue 8 scenario 8: the marker's request ended without rotation and only its clear failed.
		{name: "own marker, not rotated, past its bound: clear it", in: func() CloudInput {
			in := held(c0.Add(time.Hour))
			in.Marker = &CloudMarker{Value: "m", Started: c0}
			in.Memory = &refreshes.Entry{Marker: "m", Outcome: refreshes.NotRotated}
			return in
		}, action: CloudClearMarker},
		{name: "own marker, lost: reauthorize at once", in: func() CloudInput {
			in := held(c0.Add(time.Second))
			in.Marker = &CloudMarker{Value: "m", Started: c0}
			in.Memory = &refreshes.Entry{Marker: "m", Outcome: refreshes.Lost}
			return in
		}, action: CloudReauthorize},
		{name: "memory about another marker: the Secret's marker is foreign", in: func() CloudInput {
			in := held(c0.Add(time.Hour))
			in.Marker = &CloudMarker{Value: "theirs", Started: c0}
			in.Memory = &refreshes.Entry{Marker: "mine", Outcome: refreshes.NotRotated}
			return in
		}, action: CloudReauthorize},
		{name: "answer in memory for the Secret's marker: store it first", in: func() CloudInput {
			in := held(c0.Add(time.Second))
			in.Marker = &CloudMarker{Value: "m", Started: c0}
			in.Memory = &refreshes.Entry{Marker: "m", Outcome: refreshes.Rotated}
			in.Status.RejectedCredentialsVersion = "x"
			return in
		}, action: CloudStoreAnswer},
		{name: "answer in memory, Secret replaced since: drop it", in: func() CloudInput {
			in := held(c0.Add(time.Second))
			in.Memory = &refreshes.Entry{Marker: "m", Outcome: refreshes.Rotated}
			return in
		}, action: CloudDropAnswer, at: c0.Add(time.Second + renewal.MinRetryDelay)},
		// Issue 8: a code exchange's tokens the callback could not store are the grant (the code is spent).
		{name: "code exchange's tokens in memory, no Secret yet: store them first", in: func() CloudInput {
			in := held(c0)
			in.HasRefreshToken, in.AccessToken, in.ExpiresAt = false, false, time.Time{}
			in.Memory = &refreshes.Entry{Outcome: refreshes.Exchanged}
			return in
		}, action: CloudStoreAnswer},
		{name: "code exchange's tokens in memory, a foreign marker on the Secret: the consent supersedes it", in: func() CloudInput {
			in := held(c0.Add(time.Second))
			in.Marker = &CloudMarker{Value: "theirs", Started: c0}
			in.Memory = &refreshes.Entry{Outcome: refreshes.Exchanged}
			return in
		}, action: CloudStoreAnswer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := DecideCloud(tt.in())
			if d.Action != tt.action || (!tt.at.IsZero() && !d.At.Equal(tt.at)) {
				t.Fatalf("decision %+v, want action %d at %v", d, tt.action, tt.at)
			}
			if tt.check != nil {
				tt.check(t, d)
			}
		})
	}
}

func cloudErr(endpoint string, status int, code string, kind upstream.Kind) *upstream.Error {
	e := upstream.NewError(cloudapi.API, endpoint, status, kind, "", nil)
	e.Code = code
	return e
}

// Issue 8 scenario 10: only invalid_grant / 401 and invalid_client are terminal.
func TestCloudRefreshFailed(t *testing.T) {
	unanswered := upstream.NewError(cloudapi.API, cloudapi.EndpointRefresh, 0, upstream.Transient, "timeout", nil)
	unanswered.Unanswered = true
	tests := []struct {
		name    string
		err     error
		action  CloudFailureAction
		outcome refreshes.Outcome
	}{
		{"401 invalid_grant", cloudErr(cloudapi.EndpointRefresh, 401, "invalid_grant", upstream.Rejected), CloudFailReauthorize, refreshes.NotRotated},
		{"400 invalid_grant", cloudErr(cloudapi.EndpointRefresh, 400, "invalid_grant", upstream.Rejected), CloudFailReauthorize, refreshes.NotRotated},
		{"401 without a code", cloudErr(cloudapi.EndpointRefresh, 401, "", upstream.Rejected), CloudFailReauthorize, refreshes.NotRotated},
		{"401 invalid_client", cloudErr(cloudapi.EndpointRefresh, 401, "invalid_client", upstream.Rejected), CloudFailStop, refreshes.NotRotated},
		{"403 without a code", cloudErr(cloudapi.EndpointRefresh, 403, "", upstream.Rejected), CloudFailRetry, refreshes.NotRotated},
		{"400 unauthorized_client", cloudErr(cloudapi.EndpointRefresh, 400, "unauthorized_client", upstream.Rejected), CloudFailRetry, refreshes.NotRotated},
		{"400 invalid_request", cloudErr(cloudapi.EndpointRefresh, 400, "invalid_request", upstream.Invalid), CloudFailRetry, refreshes.NotRotated},
		{"404", cloudErr(cloudapi.EndpointRefresh, 404, "", upstream.Invalid), CloudFailRetry, refreshes.NotRotated},
		{"503", cloudErr(cloudapi.EndpointRefresh, 503, "", upstream.Transient), CloudFailRetry, refreshes.NotRotated},
		{"unanswered", unanswered, CloudFailReauthorize, refreshes.Lost},
		{"malformed 200", upstream.Malformed(cloudapi.API, cloudapi.EndpointRefresh, 200, "x", nil), CloudFailReauthorize, refreshes.Lost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := CloudRefreshFailed(tt.err, 1, renewal.DefaultBackoff, 0, c0.Add(time.Hour), c0)
			if f.Action != tt.action || f.Outcome != tt.outcome {
				t.Fatalf("%+v, want action %d outcome %v", f, tt.action, tt.outcome)
			}
			switch f.Action {
			case CloudFailRetry:
				if f.Retry.Delay <= 0 || f.Retry.Reason != v1alpha1.ReasonRefreshFailing || !f.Retry.Ready {
					t.Errorf("retry %+v", f.Retry)
				}
			case CloudFailStop:
				if f.Ready == nil || f.Ready.Reason != v1alpha1.ReasonCredentialsRejected {
					t.Errorf("stop %+v", f.Ready)
				}
			case CloudFailReauthorize:
				if f.Why == "" {
					t.Error("no why")
				}
			}
		})
	}
	// A 503's Retry-After is honoured.
	e := cloudErr(cloudapi.EndpointRefresh, http.StatusServiceUnavailable, "", upstream.Transient)
	e.RetryAfter = 30 * time.Second
	if f := CloudRefreshFailed(e, 1, renewal.DefaultBackoff, 0, time.Time{}, c0); f.Retry.Delay < 30*time.Second || f.Retry.Ready {
		t.Errorf("Retry-After: %+v", f.Retry)
	}
}

// Issue 8 scenario 10: the keep-alive deadline is reported before it is missed.
func TestCloudKeepAlive(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name      string
		last      time.Time
		keepAlive time.Duration
		failing   bool
		now       time.Time
		atRisk    bool
		riskAt    time.Time
	}{
		{"unknown last refresh", time.Time{}, 7 * day, true, c0, false, time.Time{}},
		{"failing before the keep-alive time", c0, 7 * day, true, c0.Add(7*day - time.Second), false, c0.Add(7 * day)},
		{"failing at the keep-alive time", c0, 7 * day, true, c0.Add(7 * day), true, c0.Add(7 * day)},
		{"not failing past it", c0, 7 * day, false, c0.Add(10 * day), false, c0.Add(7 * day)},
		{"keep-alive beyond the lifetime: the margin", c0, 30 * day, true, c0.Add(13 * day), true, c0.Add(13 * day)},
		{"no keep-alive: the margin", c0, 0, true, c0.Add(13*day - time.Second), false, c0.Add(13 * day)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			atRisk, riskAt, deadline := CloudKeepAlive(tt.last, tt.keepAlive, tt.failing, tt.now)
			if atRisk != tt.atRisk || !riskAt.Equal(tt.riskAt) || (!tt.last.IsZero() && !deadline.Equal(tt.last.Add(cloudapi.RefreshTokenLifetime))) {
				t.Fatalf("(%v, %v, %v), want (%v, %v)", atRisk, riskAt, deadline, tt.atRisk, tt.riskAt)
			}
		})
	}
	if c := CloudAuthorizedCondition(true, c0, c0.Add(14*day)); c.Reason != v1alpha1.ReasonRefreshTokenAtRisk || !strings.Contains(c.Message, "2026-03-15T12:00:00Z") {
		t.Errorf("%+v", c)
	}
	if c := CloudAuthorizedCondition(false, c0, c0); c.Reason != v1alpha1.ReasonGranted || c.Status != metav1.ConditionTrue {
		t.Errorf("%+v", c)
	}
}
