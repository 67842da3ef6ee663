package controller

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// finalize logs the session out when asked to, then lets the object go. released: the finalizer is gone (the object with it), so there is no status to record.
func (r *M2MSessionReconciler) finalize(ctx context.Context, sess *v1alpha1.M2MSession, st *v1alpha1.M2MSessionStatus) (ctrl.Result, bool, error) {
	release := func() (ctrl.Result, bool, error) {
		return ctrl.Result{}, true, releaseFinalizer(ctx, r.Client, sess, v1alpha1.LogoutFinalizer)
	}
	if !logoutOnDelete(sess) || !controllerutil.ContainsFinalizer(sess, v1alpha1.LogoutFinalizer) {
		return release()
	}
	s := &sessState{sess: sess, st: st, now: r.Clock.Now()}
	ready, err := r.loadApp(ctx, s)
	if err != nil {
		return ctrl.Result{}, false, err
	}
	owned, err := r.Secrets.Get(ctx, sess, sess.Spec.SecretName)
	if err != nil && !isConflict(err) {
		return ctrl.Result{}, false, err
	}
	if owned != nil {
		s.session = string(owned.Data[KeySessionToken])
	}
	switch {
	case s.session == "":
	case !ready:
		r.Recorder.Eventf(sess, nil, corev1.EventTypeWarning, "LogoutSkipped", "Logout", "Not logging out: the ThingSpaceApp holds no valid token; the session will idle out")
	default:
		err := s.cli.Logout(ctx, s.appTok.AccessToken, s.session)
		switch {
		case err == nil:
			r.Recorder.Eventf(sess, nil, corev1.EventTypeNormal, "LoggedOut", "Logout", "Logged the session out on deletion")
		case upstream.IsTransient(err):
			return ctrl.Result{}, false, err
		default:
			r.Recorder.Eventf(sess, nil, corev1.EventTypeWarning, "LogoutFailed", "Logout", "Could not log out (%s); the session will idle out", err.Error())
		}
	}
	return release()
}
