package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/lockout"
	"github.com/credops/thingspace-operator/internal/logins"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// login logs in once, under the username's gate. refreshReq is the refresh annotation's value when a
// person asked for this login.
func (r *M2MSessionReconciler) login(ctx context.Context, s *sessState, refreshReq string) (ctrl.Result, error) {
	release := r.Gate.Acquire(s.gateKey)
	defer release()
	digest := lockout.Digest(s.creds.Username, s.creds.Password)
	bearer := policy.TokenDigest(s.appTok.AccessToken)
	if l, ok := r.unpublished.Usable(s.obj.GetUID(), bearer, digest, s.now, policy.KeepAliveInterval(s.sess.Spec)); ok {
		// An earlier pass logged in and could not publish it: that session is live, publish it.
		if refreshReq != "" {
			s.st.ObservedRefreshRequest = refreshReq
		}
		return r.publishLogin(ctx, s, l)
	}
	// A person asked (the annotation), or this session's own refused credentials were since changed:
	// either may pass the automatic limit, never the hard cap.
	changed := s.st.RejectedCredentialsVersion != "" && s.st.RejectedCredentialsVersion != s.credsRV
	if ok, why := r.Gate.Allow(s.gateKey, digest, refreshReq != "" || changed); !ok {
		r.recordCount(s, r.Gate.Count(s.gateKey))
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, "No login attempted: "+why)
		if r.Gate.Refused(s.gateKey, digest) {
			// The platform refused this very password (through another session): remember it across
			// restarts, and wait for the Secret to change.
			s.st.RejectedCredentialsVersion = s.credsRV
			return ctrl.Result{}, nil
		}
		// Held back by the limit only: another session's success may clear the count meanwhile.
		return r.requeueAt(s.now.Add(policy.GateRecheck)), nil
	}
	session, err := s.cli.Login(ctx, s.appTok.AccessToken, s.creds)
	if refreshReq != "" {
		s.st.ObservedRefreshRequest = refreshReq
	}
	switch {
	case err == nil:
	case thingspace.IsBearerRejected(err):
		metrics.M2MLogins.WithLabelValues("bearer_rejected").Inc()
		return r.bearerRejected(ctx, s)
	case upstream.IsTransient(err):
		metrics.M2MLogins.WithLabelValues("error").Inc()
		return r.transient(ctx, s, err)
	default:
		// Password.Invalid, a locked user, or anything we cannot classify: each may have counted
		// towards the lockout, so each is treated as a refused login, and nothing is retried.
		metrics.M2MLogins.WithLabelValues("rejected").Inc()
		r.recordCount(s, r.Gate.Failed(s.gateKey, digest, s.now))
		s.st.RejectedCredentialsVersion = s.credsRV
		msg := fmt.Sprintf("The platform refused the login (%s); %d consecutive failure(s) for this username. No login is attempted again until the credentials Secret changes", err.Error(), s.st.ConsecutiveLoginFailures)
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, msg)
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, v1alpha1.ReasonLoginRejected, "Login", "%s", msg)
		return ctrl.Result{}, nil
	}
	return r.loggedIn(ctx, s, logins.Login{Session: session, Bearer: bearer, Credentials: digest, At: s.now})
}

// loggedIn records a successful login (the gate's lock held) and publishes its session.
func (r *M2MSessionReconciler) loggedIn(ctx context.Context, s *sessState, l logins.Login) (ctrl.Result, error) {
	metrics.M2MLogins.WithLabelValues("success").Inc()
	// The platform reset the username's count whatever happens to this session next.
	r.recordCount(s, r.Gate.Succeeded(s.gateKey, s.now))
	return r.publishLogin(ctx, s, l)
}

// publishLogin writes a login's session into the Secret and the status. A failed Secret write keeps
// the login for the retry (r.unpublished): the session is live upstream, another login would open one
// more.
func (r *M2MSessionReconciler) publishLogin(ctx context.Context, s *sessState, l logins.Login) (ctrl.Result, error) {
	s.st.RejectedCredentialsVersion = ""
	// The login is recorded in the Secret's write too (adoptHeldLogin).
	if err := r.putSecret(ctx, s, l.Session, l.At); err != nil {
		r.unpublished.Put(s.obj.GetUID(), l)
		return r.secretWriteFailed(s, err)
	}
	r.unpublished.Forget(s.obj.GetUID())
	st := s.st
	st.FailedAttempts, st.RejectedTokenDigest = 0, ""
	st.LastLoginTime = timePtr(l.At)
	st.LoginTokenDigest, st.LoginTokenExpiresAt = policy.TokenDigest(s.appTok.AccessToken), timePtr(s.appTok.ExpiresAt)
	st.NextKeepAliveTime = timePtr(l.At.Add(policy.KeepAliveInterval(s.sess.Spec)))
	r.setReady(s, metav1.ConditionTrue, v1alpha1.ReasonSessionValid, "The Secret holds a live session")
	if s.handover {
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeNormal, "LoggedIn", "Login",
			"Logged in with the app's new token while the old one is still valid; both headers written to Secret %s in one write", s.sess.Spec.SecretName)
	} else {
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeNormal, "LoggedIn", "Login", "Logged in; session written to Secret %s", s.sess.Spec.SecretName)
	}
	return r.wakeAt(s, st.NextKeepAliveTime.Time), nil
}

// keepAlive uses the session so the platform does not idle it out.
func (r *M2MSessionReconciler) keepAlive(ctx context.Context, s *sessState) (ctrl.Result, error) {
	err := s.cli.Account(ctx, s.appTok.AccessToken, s.session, s.sess.Spec.KeepAlive.AccountName)
	switch {
	case err == nil:
		metrics.M2MKeepAlives.WithLabelValues("success").Inc()
	case thingspace.IsSessionInvalid(err):
		metrics.M2MKeepAlives.WithLabelValues("session_expired").Inc()
		log.FromContext(ctx).Info("The platform ended the session; logging in again")
		return r.login(ctx, s, "")
	case thingspace.IsBearerRejected(err):
		metrics.M2MKeepAlives.WithLabelValues("bearer_rejected").Inc()
		return r.bearerRejected(ctx, s)
	default:
		metrics.M2MKeepAlives.WithLabelValues("error").Inc()
		return r.transient(ctx, s, err)
	}
	st := s.st
	st.FailedAttempts, st.RejectedTokenDigest = 0, ""
	st.LastKeepAliveTime = timePtr(s.now)
	next := s.now.Add(policy.KeepAliveInterval(s.sess.Spec))
	st.NextKeepAliveTime = timePtr(next)
	if err := r.writeSecret(ctx, s, s.session); err != nil {
		return r.secretWriteFailed(s, err)
	}
	r.setReady(s, metav1.ConditionTrue, v1alpha1.ReasonSessionValid, "The Secret holds a live session")
	return r.wakeAt(s, next), nil
}

// bearerRejected handles a gateway 401 on the app token (issue 8 scenario 11): the token is stale
// (revoked, or rotated under us), or the gateway will not take the key's tokens at all. The first 401 of
// an episode asks the shared broker for a new token (never a login); every retry with the same token
// backs off, and the Ready condition says so. The app's Secret holding another token ends the wait at
// once (its watch brings the pass).
func (r *M2MSessionReconciler) bearerRejected(ctx context.Context, s *sessState) (ctrl.Result, error) {
	plan := policy.BearerRejected(r.Backoff, *s.st, r.Rand(), s.now)
	if plan.RefreshApp {
		if err := r.refreshAppToken(ctx, s); err != nil {
			if until, ok := tokenbroker.ThrottledUntil(err); ok {
				// Nothing sent: the app key is inside a Retry-After. Wait for it as the app does
				// (UpstreamUnavailable, not BearerRejected, so the next 401 asks the broker again).
				w := policy.AppThrottled(policy.AppToken{}, false, until, s.now)
				s.st.FailedAttempts, s.st.NextKeepAliveTime, s.st.RejectedTokenDigest = plan.Failures, timePtr(w.At), ""
				r.setReady(s, metav1.ConditionFalse, w.Reason, "The ThingSpace gateway refused the ThingSpaceApp's token on a session call (401); "+err.Error()+"; next try at "+w.At.UTC().Format(time.RFC3339))
				return r.requeueAt(until), nil
			}
			var ce *credentialsError
			var ue *upstream.Error
			if !errors.As(err, &ce) && !errors.As(err, &ue) {
				return ctrl.Result{}, err // a Kubernetes API error: transient
			}
			// The app's own controller reports its credentials and the token endpoint; the session backs
			// off either way.
			log.FromContext(ctx).Info("Asking for a new app token failed", "error", err.Error())
		}
	}
	s.st.FailedAttempts = plan.Failures
	s.st.NextKeepAliveTime = timePtr(plan.At)
	// The wait is for this token: the app publishing another ends it (policy.BearerWaitOver).
	s.st.RejectedTokenDigest = policy.TokenDigest(s.appTok.AccessToken)
	r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonBearerRejected, plan.Message)
	if plan.RefreshApp {
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, v1alpha1.ReasonBearerRejected, "CallUpstream", "%s", plan.Message)
	}
	return r.requeueAt(plan.At), nil
}

// refreshAppToken asks the broker for a token other than the one the gateway refused, with the key set
// that issued it: the app's active one (status.activeKeySet).
func (r *M2MSessionReconciler) refreshAppToken(ctx context.Context, s *sessState) error {
	cs, err := readCredentials(ctx, r.credentialsReader(), s.app.Namespace, activeCredentials(s.app), credKey, credSecret)
	if err != nil {
		return err
	}
	creds := thingspace.Credentials{Key: cs.values[credKey], Secret: cs.values[credSecret]}
	key := tokenbroker.NewKey(endpointOf(s.app), creds)
	// No holder identity: every ThingSpaceApp holding this key is told when the token changes, and its
	// own reconcile writes it.
	_, err = r.Broker.Fetch(ctx, key, types.NamespacedName{}, s.cli, creds, s.app.Spec.Scope, s.appTok.AccessToken)
	return err
}

// transient records a failure worth retrying and plans the retry before the session idles out.
func (r *M2MSessionReconciler) transient(ctx context.Context, s *sessState, err error) (ctrl.Result, error) {
	st := s.st
	st.FailedAttempts++
	st.RejectedTokenDigest = ""
	retryAfter, _ := upstream.RetryAfterOf(err)
	// From when the answer arrived, not when the pass began: Retry-After counts from the answer.
	answered := r.Clock.Now()
	next := policy.SessionRetry(r.Backoff, st.FailedAttempts, r.Rand(), retryAfter, s.sess.Spec, answered)
	if s.handover {
		f := s.facts()
		f.Now = answered
		next = policy.SessionHandoverRetry(r.Backoff, st.FailedAttempts, r.Rand(), retryAfter, f)
	}
	st.NextKeepAliveTime = timePtr(next)
	msg := err.Error()
	r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable,
		fmt.Sprintf("%s (attempt %d); next try at %s", msg, st.FailedAttempts, renewal.Truncate(next).UTC().Format(time.RFC3339)))
	if st.FailedAttempts == 1 {
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, "SessionCallFailed", "CallUpstream", "%s; retrying with backoff", msg)
	}
	log.FromContext(ctx).Info("Session call failed; backing off", "error", msg, "attempt", st.FailedAttempts, "retryIn", next.Sub(s.now))
	return r.requeueAt(next), nil
}

// activeCredentials names the Secret of the app's active key set: the standby key set's once it issued
// the published token, the primary's otherwise.
func activeCredentials(app *v1alpha1.ThingSpaceApp) string {
	if ref := app.Spec.StandbyCredentialsSecretRef; ref != nil && app.Status.ActiveKeySet == v1alpha1.KeySetStandby {
		return ref.Name
	}
	return app.Spec.CredentialsSecretRef.Name
}
