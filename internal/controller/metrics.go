package controller

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/policy"
)

// What each controller hands internal/metrics after a pass, read from the status it just recorded.

// readyOf is the Ready condition's status ("" when there is none yet: Unknown).
func readyOf(conds []metav1.Condition) metav1.ConditionStatus {
	if c := meta.FindStatusCondition(conds, v1alpha1.ConditionReady); c != nil {
		return c.Status
	}
	return ""
}

// refreshState is the metrics state of a kind that keeps a RefreshStatus (ThingSpaceApp,
// CloudAuthorization): while refreshes fail, renewalTime is the retry slot.
func refreshState(conds []metav1.Condition, st *v1alpha1.RefreshStatus) metrics.State {
	return metrics.State{Ready: readyOf(conds), Expires: timeOf(st.ExpiresAt), Renewal: timeOf(st.RenewalTime),
		Retrying: st.FailedRefreshAttempts > 0}
}

// sessionState is an M2MSession's metrics state: the session expires policy.SessionIdleTimeout after its
// last use (a login or a keep-alive), and nextKeepAliveTime is its renewal (a retry slot after failures).
func sessionState(st *v1alpha1.M2MSessionStatus) metrics.Session {
	login, kept := timeOf(st.LastLoginTime), timeOf(st.LastKeepAliveTime)
	var expires time.Time
	if used := latestOf(login, kept); !used.IsZero() {
		expires = used.Add(policy.SessionIdleTimeout)
	}
	return metrics.Session{State: metrics.State{Ready: readyOf(st.Conditions), Expires: expires,
		Renewal: timeOf(st.NextKeepAliveTime), Retrying: st.FailedAttempts > 0}, LastKeepAlive: kept}
}

// trackLogins exports the consecutive login failures of the session's username, live from the gate.
func (r *M2MSessionReconciler) trackLogins(s *sessState) {
	gate, key := r.Gate, s.gateKey
	metrics.TrackLogins(s.sess.Namespace, s.sess.Name, key, func() int { return gate.Count(key).Failures })
}

// cloudState is a CloudAuthorization's metrics state, with its refresh token's keep-alive deadline and
// death as policy.CloudKeepAlive computes them from the last refresh.
func cloudState(ca *v1alpha1.CloudAuthorization, st *v1alpha1.CloudAuthorizationStatus) metrics.Cloud {
	_, riskAt, deadline := policy.CloudKeepAlive(timeOf(st.LastRefreshTime), durationOf(ca.Spec.RefreshTokenKeepAlive), false, time.Time{})
	return metrics.Cloud{State: refreshState(st.Conditions, &st.RefreshStatus),
		Authorized:          meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionAuthorized),
		RefreshTokenExpires: deadline, KeepAliveDeadline: riskAt}
}

func timeOf(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

func latestOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
