package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// finalize logs the session out when asked to, then lets the object go. A logout that fails transiently
// is retried with backoff, but only until the session has idled out on the platform (20 minutes after
// its last use): from then on logging it out is moot, and the object goes (issue 8 scenario 14).
// released: the finalizer is gone (the object with it), so there is no status to record.
func (r *M2MSessionReconciler) finalize(ctx context.Context, s *sessState) (ctrl.Result, bool, error) {
	sess, st := s.sess, s.st
	release := func() (ctrl.Result, bool, error) {
		return ctrl.Result{}, true, releaseFinalizer(ctx, &r.Deps, s.obj, v1alpha1.LogoutFinalizer)
	}
	if !logoutOnDelete(sess) || !controllerutil.ContainsFinalizer(s.obj, v1alpha1.LogoutFinalizer) {
		return release()
	}
	ready, err := r.loadApp(ctx, s)
	if err != nil {
		return ctrl.Result{}, false, err
	}
	owned, err := r.Secrets.Get(ctx, s.obj, sess.Spec.SecretName)
	if err != nil && !isConflict(err) {
		return ctrl.Result{}, false, err
	}
	if owned != nil {
		s.session = string(owned.Data[KeySessionToken])
	}
	facts := policy.LogoutFacts{Now: s.now, Deleted: sess.DeletionTimestamp.Time, Status: *st, HasSession: s.session != "", AppReady: ready,
		EndpointRefused: s.refused}
	d := policy.DecideLogout(facts)
	switch d.Action {
	case policy.LogoutNone:
		return release()
	case policy.LogoutMoot:
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, "LogoutSkipped", "Logout", "Not logging out: %s", d.Reason)
		return release()
	}
	err = s.cli.Logout(ctx, s.appTok.AccessToken, s.session)
	switch {
	case err == nil:
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeNormal, "LoggedOut", "Logout", "Logged the session out on deletion")
	case upstream.IsTransient(err):
		st.FailedAttempts++
		retryAfter, _ := upstream.RetryAfterOf(err)
		at := policy.LogoutRetry(r.Backoff, st.FailedAttempts, r.Rand(), retryAfter, facts)
		msg := fmt.Sprintf("Logging out on deletion failed (%s, attempt %d); next try at %s, giving up at %s when the session has idled out",
			err.Error(), st.FailedAttempts, renewal.Truncate(at).UTC().Format(time.RFC3339),
			policy.LogoutMootAt(*st, facts.Deleted).UTC().Format(time.RFC3339))
		if st.FailedAttempts == 1 {
			r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, "LogoutFailed", "Logout", "%s", msg)
		}
		log.FromContext(ctx).Info("Logout failed; backing off", "error", err.Error(), "attempt", st.FailedAttempts, "retryIn", at.Sub(s.now))
		return r.requeueAt(at), false, nil
	default:
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, "LogoutFailed", "Logout", "Could not log out (%s); the session will idle out", err.Error())
	}
	return release()
}
