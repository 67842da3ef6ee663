package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/passwords"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// credentialsKey is the session's credentials Secret: the key of its pending passwords too, so every
// session that reads one Secret sees a reset's password before anything else.
func (s *sessState) credentialsKey() types.NamespacedName {
	return types.NamespacedName{Namespace: s.credsNS, Name: s.sess.Spec.CredentialsSecretRef.Name}
}

// storePending writes a password from an earlier reset that has not landed yet. false: it still has not
// (condition set; the error is returned so the write is retried).
func (r *M2MSessionReconciler) storePending(ctx context.Context, s *sessState) (bool, error) {
	key := s.credentialsKey()
	pw, ok := r.Pending.Get(key)
	if !ok {
		return true, nil
	}
	if err := r.storePassword(ctx, key, pw.Password); err != nil {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonPasswordNotStored,
			"A new password from a reset is not stored in the credentials Secret yet; retrying the write")
		return false, err
	}
	// The reset happened when the password was issued, not when it finally landed.
	s.st.PasswordRotatedAt = timePtr(pw.ResetAt)
	return true, nil
}

// persistBound bounds a password reset and the write of its answer once they run past the reconcile's
// cancellation: the request's own timeout, and time to store the answer. The manager's drain waits
// longer than this.
func (r *M2MSessionReconciler) persistBound() time.Duration {
	t := r.Endpoints.RequestTimeout
	if t <= 0 {
		t = upstream.DefaultTimeout
	}
	return t + 10*time.Second
}

// rotatePassword resets the UWS password and stores the new one before anything else. The reset and the
// write of its answer run on a context detached from the reconcile's and register with the in-flight
// tracker, so a shutdown (SIGTERM, a lost lease) waits for the new password to be stored instead of
// losing it (issue 8 scenario 5); once the tracker drains, no reset starts.
func (r *M2MSessionReconciler) rotatePassword(ctx context.Context, s *sessState) (ctrl.Result, error) {
	end, ok := r.InFlight.Begin()
	if !ok {
		log.FromContext(ctx).Info("Shutting down: the password reset waits for the next process")
		return ctrl.Result{}, nil
	}
	defer end()
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.persistBound())
	defer cancel()
	newPassword, err := s.cli.ResetPassword(pctx, s.appTok.AccessToken, s.session, s.creds.Password)
	if err != nil {
		return r.resetFailed(ctx, s, err)
	}
	// Recorded before the write: whatever happens next, this reset is never repeated for this interval.
	key := s.credentialsKey()
	r.Pending.Put(key, passwords.Pending{Password: newPassword, ResetAt: s.now})
	s.st.PasswordRotatedAt = timePtr(s.now)
	// The session is used by the reset, which counts as a keep-alive.
	s.st.LastKeepAliveTime = timePtr(s.now)
	if err := r.storePassword(pctx, key, newPassword); err != nil {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonPasswordNotStored,
			"The password was reset but the new one is not stored in the credentials Secret yet; retrying the write")
		return ctrl.Result{}, err
	}
	r.Recorder.Eventf(s.obj, nil, corev1.EventTypeNormal, "PasswordRotated", "ResetPassword",
		"Reset the UWS password and stored the new one in Secret %s", key.Name)
	s.st.RejectedTokenDigest = ""
	r.setReady(s, metav1.ConditionTrue, v1alpha1.ReasonSessionValid, "The Secret holds a live session")
	next := s.now.Add(policy.KeepAliveInterval(s.sess.Spec))
	if s.st.NextKeepAliveTime != nil && s.st.NextKeepAliveTime.Time.Before(next) {
		next = s.st.NextKeepAliveTime.Time
	}
	return r.wakeAt(s, next), nil
}

// resetFailed acts on a failed password reset as policy.ResetFailed sorts it.
func (r *M2MSessionReconciler) resetFailed(ctx context.Context, s *sessState, err error) (ctrl.Result, error) {
	switch policy.ResetFailed(err) {
	case policy.ResetUnanswered:
		// The platform may have applied it: the old password may be dead and the new one is lost. This
		// pass only records that (the reconcile stores it before returning); the one login that settles it
		// waits until the record is in the API server, so a restart honours it too.
		s.st.PasswordResetUnanswered = &v1alpha1.UnansweredPasswordReset{SentAt: metav1.NewTime(renewal.Truncate(s.now)), CredentialsVersion: s.credsRV}
		s.st.PasswordRotatedAt = timePtr(s.now)
		log.FromContext(ctx).Info("A password reset got no usable answer; it is not sent again, and one login with the old password will show whether it applied",
			"error", err.Error())
		return requeueAt(s.now, s.now.Add(policy.UnansweredRecheck)), nil
	case policy.ResetSessionEnded:
		return r.login(ctx, s, "")
	case policy.ResetBearerRejected:
		return r.bearerRejected(ctx, s)
	case policy.ResetRetry:
		return r.transient(ctx, s, err)
	default:
		// Refused (an old password the platform no longer takes, say). Retrying could count towards the
		// lockout: no reset until the credentials Secret changes. The session itself is unaffected.
		s.st.PasswordRotationRejectedVersion = s.credsRV
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, "PasswordRotationFailed", "ResetPassword",
			"The platform refused the password reset (%s); no reset is attempted until the credentials Secret changes", err.Error())
		return r.wakeAt(s, s.now), nil
	}
}

// storePassword writes a new password into the credentials Secret through internal/secrets, which
// retries briefly: the password exists nowhere else. What does not land is kept in Pending and retried
// first on the next reconcile, with PasswordNotStored visible meanwhile.
func (r *M2MSessionReconciler) storePassword(ctx context.Context, key types.NamespacedName, password string) error {
	if err := r.Secrets.StoreCredential(ctx, key, credPassword, []byte(password)); err != nil {
		return err
	}
	r.Pending.Stored(key, password)
	return nil
}
