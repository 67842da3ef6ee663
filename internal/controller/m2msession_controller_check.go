package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/lockout"
	"github.com/credops/thingspace-operator/internal/logins"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/policy"
)

// EventPasswordResetNotApplied is the Normal event when a reset without a usable answer turns out not
// to have been applied.
const EventPasswordResetNotApplied = "PasswordResetNotApplied"

// checkPassword settles a password reset that got no usable answer with at most one login using the
// password it replaced, under the username's lockout gate: a success means the reset was not applied;
// a refusal means the platform changed the password and the new one is lost. The reset itself is never
// sent again with the old password.
func (r *M2MSessionReconciler) checkPassword(ctx context.Context, s *sessState) (ctrl.Result, error) {
	release := r.Gate.Acquire(s.gateKey)
	defer release()
	digest := lockout.Digest(s.creds.Username, s.creds.Password)
	allowed, why := r.Gate.Allow(s.gateKey, digest, false)
	switch policy.PasswordCheckGate(allowed, r.Gate.Refused(s.gateKey, digest)) {
	case policy.CheckLost:
		return r.passwordLost(s, "the platform had already refused it for this username")
	case policy.CheckHeld:
		r.recordCount(s, r.Gate.Count(s.gateKey))
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonLoginRejected,
			"A password reset got no usable answer; the one login that shows whether it applied is held back: "+why)
		return r.requeueAt(s.now.Add(policy.GateRecheck)), nil
	}
	session, err := s.cli.Login(ctx, s.appTok.AccessToken, s.creds)
	switch policy.PasswordCheckVerdict(err) {
	case policy.CheckBearerRejected:
		metrics.M2MLogins.WithLabelValues("bearer_rejected").Inc()
		return r.bearerRejected(ctx, s)
	case policy.CheckRetry:
		metrics.M2MLogins.WithLabelValues("error").Inc()
		return r.transient(ctx, s, fmt.Errorf("checking whether a password reset without an answer applied: %w", err))
	case policy.CheckLost:
		metrics.M2MLogins.WithLabelValues("rejected").Inc()
		r.recordCount(s, r.Gate.Failed(s.gateKey, digest, s.now))
		s.st.RejectedCredentialsVersion = s.credsRV
		return r.passwordLost(s, err.Error())
	}
	u := s.st.PasswordResetUnanswered
	r.Recorder.Eventf(s.obj, nil, corev1.EventTypeNormal, EventPasswordResetNotApplied, "CheckPassword",
		"The password reset sent at %s got no usable answer, but the password it would have replaced still logs in: it was not applied. The next reset is an interval after it",
		u.SentAt.UTC().Format("2006-01-02T15:04:05Z"))
	s.st.PasswordResetUnanswered = nil
	return r.loggedIn(ctx, s, logins.Login{Session: session, Bearer: policy.TokenDigest(s.appTok.AccessToken), Credentials: digest, At: s.now})
}

// passwordLost records that the unanswered reset was applied and its password is lost: Ready says what
// a person must do, and nothing logs in until the credentials Secret changes.
func (r *M2MSessionReconciler) passwordLost(s *sessState, why string) (ctrl.Result, error) {
	s.st.PasswordResetUnanswered.Lost = true
	s.st.FailedAttempts, s.st.RejectedTokenDigest = 0, ""
	msg := policy.PasswordLostMessage(*s.st.PasswordResetUnanswered, why, s.sess.Spec.CredentialsSecretRef.Name)
	r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonPasswordLost, msg)
	r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, v1alpha1.ReasonPasswordLost, "CheckPassword", "%s", msg)
	return ctrl.Result{}, nil
}
