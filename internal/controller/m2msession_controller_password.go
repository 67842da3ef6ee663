package controller

import (
	"context"
	"errors"
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
	"github.com/credops/thingspace-operator/internal/secrets"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// credentialsKey is the session's credentials Secret: the key of its pending passwords too, so every
// session that reads one Secret sees a reset's password before anything else.
func (s *sessState) credentialsKey() types.NamespacedName {
	return types.NamespacedName{Namespace: s.credsNS, Name: s.sess.Spec.CredentialsSecretRef.Name}
}

// storePending holds the session back while a password from an earlier reset is on its way to the
// credentials Secret: nothing else may happen with the account before it has landed. keepStoring is
// its only writer (so an older password never lands over a newer one). false: it has not landed yet
// (condition set); its write wakes the session through the Secret's watch, the requeue is the fallback.
func (r *M2MSessionReconciler) storePending(s *sessState) (ctrl.Result, bool) {
	if _, ok := r.Pending.Get(s.credentialsKey()); !ok {
		return ctrl.Result{}, true
	}
	r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonPasswordNotStored,
		"A new password from a reset is not stored in the credentials Secret yet; retrying the write")
	return r.requeueAt(s.now.Add(pendingRetry)), false
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
	kept := false // the registration passed on to keepStoring
	defer func() {
		if !kept {
			end()
		}
	}()
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
		r.keepStoring(ctx, key, s.creds.Password, newPassword, end)
		kept = true
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
		return r.requeueAt(s.now.Add(policy.UnansweredRecheck)), nil
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
// retries briefly: the password exists nowhere else. What does not land stays in Pending and keepStoring
// writes it, with PasswordNotStored visible meanwhile.
func (r *M2MSessionReconciler) storePassword(ctx context.Context, key types.NamespacedName, password string) error {
	if err := r.Secrets.StoreCredential(ctx, key, credPassword, []byte(password)); err != nil {
		return err
	}
	r.Pending.Stored(key, password)
	return nil
}

// pendingRetry paces keepStoring's attempts, each of them StoreCredential's own few retries.
const pendingRetry = time.Second

// pendingAttempt bounds one attempt of keepStoring: an API server that accepts and never answers holds
// no attempt forever.
const pendingAttempt = 15 * time.Second

// keepStoring writes a reset's password whose write failed (an API outage) in the background until it
// lands, holding the reset's in-flight registration (end) until then; storePending holds the session
// back meanwhile. The password exists nowhere else: when a pass kept it in memory and returned, a
// shutdown after the pass (a SIGTERM, or the lost lease the same outage brings) found nothing in
// flight and exited with it, and one during the pass drained as soon as the pass gave up (chaos seed
// 1, "passwords lost"). Reconciles stop at shutdown; this goroutine does not, and the drain waits for
// it within its bound.
//
// Each attempt writes only over the password the reset replaced (old): after a lost lease, another
// manager may have stored this password, reset again and stored a newer one while an attempt here
// seemed to fail; putting this one back would lose the newer one.
func (r *M2MSessionReconciler) keepStoring(ctx context.Context, key types.NamespacedName, old, password string, end func()) {
	logger := log.FromContext(ctx)
	bg := context.WithoutCancel(ctx)
	go func() {
		defer end()
		for {
			// Real time: this paces an API write's retries, it decides nothing.
			time.Sleep(pendingRetry)
			if pw, ok := r.Pending.Get(key); !ok || pw.Password != password {
				return
			}
			actx, cancel := context.WithTimeout(bg, pendingAttempt)
			err := r.Secrets.StoreCredentialReplacing(actx, key, credPassword, []byte(old), []byte(password))
			cancel()
			switch {
			case err == nil:
				r.Pending.Stored(key, password)
				logger.Info("The new password from the reset is stored in the credentials Secret", "secret", key.Name)
				return
			case errors.Is(err, secrets.ErrSuperseded):
				r.Pending.Stored(key, password)
				logger.Info("The credentials Secret holds a newer password than this reset's; not writing over it", "secret", key.Name)
				return
			}
		}
	}()
}
