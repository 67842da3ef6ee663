package controller

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/credops/thingspace-operator/internal/policy"
)

// throttled waits, sending nothing and counting no failure, until the time before which the upstream
// asked not to be called for the key (a Retry-After another holder's call, a session's refresh or this
// app's own call got), showing what a throttled call would (policy.AppThrottled).
func (r *ThingSpaceAppReconciler) throttled(s *appState, until time.Time, revoked bool) ctrl.Result {
	w := policy.AppThrottled(s.in.Held, revoked, until, s.now)
	s.st.RenewalTime = timePtr(w.At)
	ready := metav1.ConditionFalse
	if w.Ready {
		ready = metav1.ConditionTrue
	}
	r.setReady(s, ready, w.Reason, w.Message)
	return r.requeueAt(until)
}
