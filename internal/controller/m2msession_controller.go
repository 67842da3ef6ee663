package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/memo"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// Data keys of the Secret an M2MSession writes: one mounted Secret carries both header values.
const (
	KeySessionToken         = v1alpha1.SecretKeySessionToken
	KeyAccessTokenExpiresAt = v1alpha1.SecretKeyAccessTokenExpiresAt
)

// Data keys of the UWS credentials Secret.
const (
	credUsername = v1alpha1.CredentialsKeyUsername
	credPassword = v1alpha1.CredentialsKeyPassword
)

// defaultKeepAlive is the keep-alive interval when the spec leaves it out: half the platform's
// 20-minute idle timeout.
const defaultKeepAlive = 10 * time.Minute

// M2MSessionReconciler keeps each M2MSession's UWS session alive in its Secret.
type M2MSessionReconciler struct {
	Deps
	// Broker is the ThingSpaceApps' token broker: a Bearer the gateway rejects is replaced through it.
	Broker *tokenbroker.Broker
	// Gate guards UWS usernames against lockout, across sessions.
	Gate *loginGate
	// Pending holds reset passwords not yet stored in their credentials Secret.
	Pending *pendingPasswords
	// statuses remembers the status last written per session (see memo.Statuses).
	statuses *memo.Statuses[v1alpha1.M2MSessionStatus]
}

// pendingPasswords keeps a new password in memory until it lands in its credentials Secret: losing the
// response of a reset means losing the account's password.
type pendingPasswords struct {
	mu sync.Mutex
	m  map[types.NamespacedName]pendingPassword
}

// pendingPassword is a reset's outcome: the new password and when the reset happened.
type pendingPassword struct {
	password string
	resetAt  time.Time
}

func newPendingPasswords() *pendingPasswords {
	return &pendingPasswords{m: map[types.NamespacedName]pendingPassword{}}
}

func (p *pendingPasswords) get(k types.NamespacedName) (pendingPassword, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[k]
	return v, ok
}

func (p *pendingPasswords) put(k types.NamespacedName, v pendingPassword) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[k] = v
}

func (p *pendingPasswords) drop(k types.NamespacedName, password string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m[k].password == password {
		delete(p.m, k)
	}
}

// +kubebuilder:rbac:groups=thingspace.credops.io,resources=m2msessions,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=thingspace.credops.io,resources=m2msessions/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=thingspace.credops.io,resources=m2msessions/finalizers,verbs=update

// Reconcile brings one M2MSession's Secret and status up to date and says when to look again.
func (r *M2MSessionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	sess := &v1alpha1.M2MSession{}
	if err := r.Get(ctx, req.NamespacedName, sess); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.ForgetSession(req.Namespace, req.Name)
			r.statuses.Forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !sess.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, sess)
	}
	if err := syncFinalizer(ctx, r.Client, sess, v1alpha1.LogoutFinalizer, logoutOnDelete(sess)); err != nil {
		return ctrl.Result{}, err
	}
	cached := sess.Status.DeepCopy()
	known := r.statuses.Get(req.NamespacedName, sess.UID, sess.Status)
	sess.Status = *known.DeepCopy()
	st := sess.Status.DeepCopy()
	res, syncErr := r.sync(ctx, sess, st)
	if err := memo.Record(ctx, r.Client, r.statuses, sess, *cached, *st, func(s v1alpha1.M2MSessionStatus) client.Object {
		c := sess.DeepCopy()
		c.Status = s
		return c
	}); err != nil {
		return ctrl.Result{}, err
	}
	metrics.SetSession(sess.Namespace, sess.Name, meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionReady))
	if syncErr != nil {
		return ctrl.Result{}, syncErr
	}
	return res, nil
}

// sessState is what one reconcile works with.
type sessState struct {
	sess    *v1alpha1.M2MSession
	st      *v1alpha1.M2MSessionStatus
	now     time.Time
	cli     *thingspace.Client
	app     *v1alpha1.ThingSpaceApp
	appTok  tokenbroker.Token
	owned   *corev1.Secret
	session string // the session token in the Secret
	creds   thingspace.UWSCredentials
	credsRV string
	gateKey string
}

func (r *M2MSessionReconciler) sync(ctx context.Context, sess *v1alpha1.M2MSession, st *v1alpha1.M2MSessionStatus) (ctrl.Result, error) {
	s := &sessState{sess: sess, st: st, now: r.Clock.Now()}

	// A password from a reset that has not landed yet comes before anything else.
	credsKey := types.NamespacedName{Namespace: sess.Namespace, Name: sess.Spec.CredentialsSecretRef.Name}
	if pw, ok := r.Pending.get(credsKey); ok {
		if err := r.storePassword(ctx, credsKey, pw.password); err != nil {
			r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonPasswordNotStored,
				"A new password from a reset is not stored in the credentials Secret yet; retrying the write")
			return ctrl.Result{}, err
		}
		// The reset happened when the password was issued, not when it finally landed.
		st.PasswordRotatedAt = timePtr(pw.resetAt)
	}

	ready, err := r.loadApp(ctx, s)
	if err != nil || !ready {
		return ctrl.Result{}, err
	}

	s.owned, err = r.Secrets.Get(ctx, sess, sess.Spec.SecretName)
	if isConflict(err) {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, err.Error())
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	if s.owned != nil {
		s.session = string(s.owned.Data[KeySessionToken])
	}

	if ok := r.loadCredentials(ctx, s); !ok {
		return ctrl.Result{}, nil
	}
	digest := passwordDigest(s.creds.Username, s.creds.Password)
	rejectedHere := st.RejectedCredentialsVersion != "" && st.RejectedCredentialsVersion == s.credsRV
	if rejectedHere {
		r.Gate.Seed(s.gateKey, int(st.ConsecutiveLoginFailures), digest)
	} else {
		r.Gate.Seed(s.gateKey, int(st.ConsecutiveLoginFailures), "")
	}

	refreshReq := sess.Annotations[v1alpha1.RefreshRequestedAnnotation]
	manual := refreshReq != "" && refreshReq != st.ObservedRefreshRequest
	if rejectedHere && !manual && gatedByGeneration(st.Conditions, v1alpha1.ConditionReady, sess.Generation) {
		return ctrl.Result{}, nil // refused credentials: wait for the Secret (or a person) to change something
	}

	next := s.now
	if st.NextKeepAliveTime != nil {
		next = st.NextKeepAliveTime.Time
	}
	due := !s.now.Before(next)
	// After a transient failure, nothing goes upstream before the planned retry, whatever woke us.
	if st.FailedAttempts > 0 && !due && !manual {
		return requeueAt(s.now, next), nil
	}

	switch {
	case s.session == "" || manual:
		return r.login(ctx, s, manual, refreshReq)
	case r.rotationDue(s):
		// Before a keep-alive: the reset uses the session, so it keeps it alive too.
		return r.rotatePassword(ctx, s)
	case due && sess.Spec.KeepAlive.AccountName == "":
		// No account to read: a fresh login before the idle timeout; the old session idles out.
		return r.login(ctx, s, false, "")
	case due:
		return r.keepAlive(ctx, s)
	}
	// Nothing due: make sure the Secret carries the app's current token, which follows app rotations.
	if err := r.writeSecret(ctx, s, s.session); err != nil {
		return r.secretWriteFailed(s, err)
	}
	r.setReady(s, metav1.ConditionTrue, v1alpha1.ReasonSessionValid, "The Secret holds a live session")
	return r.wakeAt(s, next), nil
}

// loadApp reads the referenced ThingSpaceApp, its client and its current token. false: not usable yet
// (condition set; the app and its Secret are watched).
func (r *M2MSessionReconciler) loadApp(ctx context.Context, s *sessState) (bool, error) {
	app := &v1alpha1.ThingSpaceApp{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: s.sess.Namespace, Name: s.sess.Spec.AppRef.Name}, app); err != nil {
		if apierrors.IsNotFound(err) {
			r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonAppNotReady, fmt.Sprintf("ThingSpaceApp %q not found", s.sess.Spec.AppRef.Name))
			return false, nil
		}
		return false, err
	}
	s.app = app
	cli, err := r.Endpoints.ThingSpace(endpointOf(app), app.Spec.CABundle)
	if err != nil {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonInvalidEndpoint, "ThingSpaceApp "+app.Name+": "+err.Error())
		return false, nil
	}
	s.cli = cli
	owned, err := r.Secrets.Get(ctx, app, app.Spec.SecretName)
	if err != nil && !isConflict(err) {
		return false, err
	}
	s.appTok = heldToken(owned)
	if s.appTok.AccessToken == "" || !s.now.Before(s.appTok.ExpiresAt) {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonAppNotReady, fmt.Sprintf("ThingSpaceApp %q holds no valid token yet", app.Name))
		return false, nil
	}
	return true, nil
}

// loadCredentials reads and checks the UWS credentials. false: unusable (condition set).
func (r *M2MSessionReconciler) loadCredentials(ctx context.Context, s *sessState) bool {
	cs, err := readCredentials(ctx, r.APIReader, s.sess.Namespace, s.sess.Spec.CredentialsSecretRef.Name, credUsername, credPassword)
	var missing *credentialsError
	if errors.As(err, &missing) {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound, missing.Error())
		return false
	} else if err != nil {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound, "reading the credentials Secret failed")
		return false
	}
	s.creds = thingspace.UWSCredentials{Username: cs.values[credUsername], Password: cs.values[credPassword]}
	s.credsRV = cs.resourceVersion
	s.gateKey = gateKey(endpointOf(s.app), s.creds.Username)
	problems, warnings := thingspace.ValidateUWS(s.creds)
	if len(problems) > 0 {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonInvalidCredentials,
			"The UWS credentials break the platform's rules, so no login is attempted: "+strings.Join(problems, "; "))
		return false
	}
	if len(warnings) > 0 && s.st.ObservedCredentialsVersion != s.credsRV {
		r.Recorder.Eventf(s.sess, nil, corev1.EventTypeWarning, "WeakPassword", "CheckCredentials",
			"The UWS password does not meet the policy for new passwords: %s", strings.Join(warnings, "; "))
	}
	s.st.ObservedCredentialsVersion = s.credsRV
	return true
}

// login logs in once, under the username's gate.
func (r *M2MSessionReconciler) login(ctx context.Context, s *sessState, requested bool, refreshReq string) (ctrl.Result, error) {
	release := r.Gate.Acquire(s.gateKey)
	defer release()
	digest := passwordDigest(s.creds.Username, s.creds.Password)
	// A person asked (the annotation), or this session's own refused credentials were since changed:
	// either may pass the automatic limit, never the hard cap.
	changed := s.st.RejectedCredentialsVersion != "" && s.st.RejectedCredentialsVersion != s.credsRV
	if ok, why := r.Gate.Allow(s.gateKey, digest, requested || changed); !ok {
		s.st.ConsecutiveLoginFailures = int32(r.Gate.Failures(s.gateKey))
		if r.Gate.Refused(s.gateKey, digest) {
			// The platform refused this very password (through another session): remember it across
			// restarts. A password held back only by the limit was never refused and is not recorded.
			s.st.RejectedCredentialsVersion = s.credsRV
		}
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, "No login attempted: "+why)
		return ctrl.Result{}, nil
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
		r.Gate.Failed(s.gateKey, digest)
		s.st.ConsecutiveLoginFailures = int32(r.Gate.Failures(s.gateKey))
		s.st.RejectedCredentialsVersion = s.credsRV
		msg := fmt.Sprintf("The platform refused the login (%s); %d consecutive failure(s) for this username. No login is attempted again until the credentials Secret changes", err.Error(), s.st.ConsecutiveLoginFailures)
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, msg)
		r.Recorder.Eventf(s.sess, nil, corev1.EventTypeWarning, v1alpha1.ReasonLoginRejected, "Login", "%s", msg)
		return ctrl.Result{}, nil
	}
	metrics.M2MLogins.WithLabelValues("success").Inc()
	r.Gate.Succeeded(s.gateKey)
	if err := r.writeSecret(ctx, s, session); err != nil {
		return r.secretWriteFailed(s, err)
	}
	st := s.st
	st.ConsecutiveLoginFailures = 0
	st.RejectedCredentialsVersion = ""
	st.FailedAttempts = 0
	st.LastLoginTime = timePtr(s.now)
	st.NextKeepAliveTime = timePtr(s.now.Add(keepAliveInterval(s.sess)))
	r.setReady(s, metav1.ConditionTrue, v1alpha1.ReasonSessionValid, "The Secret holds a live session")
	r.Recorder.Eventf(s.sess, nil, corev1.EventTypeNormal, "LoggedIn", "Login", "Logged in; session written to Secret %s", s.sess.Spec.SecretName)
	return r.wakeAt(s, s.now.Add(keepAliveInterval(s.sess))), nil
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
		return r.login(ctx, s, false, "")
	case thingspace.IsBearerRejected(err):
		metrics.M2MKeepAlives.WithLabelValues("bearer_rejected").Inc()
		return r.bearerRejected(ctx, s)
	default:
		metrics.M2MKeepAlives.WithLabelValues("error").Inc()
		return r.transient(ctx, s, err)
	}
	if err := r.writeSecret(ctx, s, s.session); err != nil {
		return r.secretWriteFailed(s, err)
	}
	st := s.st
	st.FailedAttempts = 0
	st.LastKeepAliveTime = timePtr(s.now)
	next := s.now.Add(keepAliveInterval(s.sess))
	st.NextKeepAliveTime = timePtr(next)
	r.setReady(s, metav1.ConditionTrue, v1alpha1.ReasonSessionValid, "The Secret holds a live session")
	return r.wakeAt(s, next), nil
}

// rotatePassword resets the UWS password and stores the new one before anything else.
func (r *M2MSessionReconciler) rotatePassword(ctx context.Context, s *sessState) (ctrl.Result, error) {
	newPassword, err := s.cli.ResetPassword(ctx, s.appTok.AccessToken, s.session, s.creds.Password)
	switch {
	case err == nil:
	case thingspace.IsSessionInvalid(err):
		return r.login(ctx, s, false, "")
	case thingspace.IsBearerRejected(err):
		return r.bearerRejected(ctx, s)
	case upstream.IsTransient(err):
		return r.transient(ctx, s, err)
	default:
		// Refused (an old password the platform no longer takes, say). Retrying could count towards the
		// lockout: no reset until the credentials Secret changes. The session itself is unaffected.
		s.st.PasswordRotationRejectedVersion = s.credsRV
		r.Recorder.Eventf(s.sess, nil, corev1.EventTypeWarning, "PasswordRotationFailed", "ResetPassword",
			"The platform refused the password reset (%s); no reset is attempted until the credentials Secret changes", err.Error())
		return r.wakeAt(s, s.now), nil
	}
	credsKey := types.NamespacedName{Namespace: s.sess.Namespace, Name: s.sess.Spec.CredentialsSecretRef.Name}
	r.Pending.put(credsKey, pendingPassword{password: newPassword, resetAt: s.now})
	if err := r.storePassword(ctx, credsKey, newPassword); err != nil {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonPasswordNotStored,
			"The password was reset but the new one is not stored in the credentials Secret yet; retrying the write")
		return ctrl.Result{}, err
	}
	s.st.PasswordRotatedAt = timePtr(s.now)
	// The session is used by the reset, which counts as a keep-alive.
	s.st.LastKeepAliveTime = timePtr(s.now)
	r.Recorder.Eventf(s.sess, nil, corev1.EventTypeNormal, "PasswordRotated", "ResetPassword",
		"Reset the UWS password and stored the new one in Secret %s", credsKey.Name)
	r.setReady(s, metav1.ConditionTrue, v1alpha1.ReasonSessionValid, "The Secret holds a live session")
	next := s.now.Add(keepAliveInterval(s.sess))
	if s.st.NextKeepAliveTime != nil && s.st.NextKeepAliveTime.Time.Before(next) {
		next = s.st.NextKeepAliveTime.Time
	}
	return r.wakeAt(s, next), nil
}

// storePassword writes a new password into the credentials Secret, retrying briefly: the API server
// may be unavailable for a moment, and the password exists nowhere else. What does not land here is
// kept in Pending and retried first on the next reconcile.
func (r *M2MSessionReconciler) storePassword(ctx context.Context, key types.NamespacedName, password string) error {
	// Brief: a longer outage is covered by Pending and the next reconciles, with PasswordNotStored
	// visible meanwhile, instead of holding a worker.
	backoff := wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 4}
	var lastErr error
	err := wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		s := &corev1.Secret{}
		if lastErr = r.APIReader.Get(ctx, key, s); lastErr != nil {
			return false, nil
		}
		if string(s.Data[credPassword]) == password {
			return true, nil
		}
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		s.Data[credPassword] = []byte(password)
		if lastErr = r.Update(ctx, s); lastErr != nil {
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		if lastErr != nil {
			return fmt.Errorf("storing the new password in Secret %s: %w", key.Name, lastErr)
		}
		return fmt.Errorf("storing the new password in Secret %s: %w", key.Name, err)
	}
	r.Pending.drop(key, password)
	return nil
}

// bearerRejected handles a gateway 401 on the app token: the token is stale (revoked, or rotated under
// us). Replace it through the broker, never by burning a login, and look again shortly.
func (r *M2MSessionReconciler) bearerRejected(ctx context.Context, s *sessState) (ctrl.Result, error) {
	cs, err := readCredentials(ctx, r.APIReader, s.app.Namespace, s.app.Spec.CredentialsSecretRef.Name, credKey, credSecret)
	if err != nil {
		return r.transient(ctx, s, err)
	}
	creds := thingspace.Credentials{Key: cs.values[credKey], Secret: cs.values[credSecret]}
	key := tokenbroker.NewKey(endpointOf(s.app), creds)
	// No holder identity: every ThingSpaceApp holding this key is told when the token changes.
	if _, err := r.Broker.Fetch(ctx, key, types.NamespacedName{}, s.cli, creds, s.app.Spec.Scope, s.appTok.AccessToken); err != nil {
		return r.transient(ctx, s, err)
	}
	// The app's own reconcile (notified by the broker) writes the fresh token; the app Secret watch
	// brings us back. Requeue too, in case this session is the broker's only caller.
	return ctrl.Result{RequeueAfter: time.Second}, nil
}

// transient records a failure worth retrying and plans the retry before the session idles out.
func (r *M2MSessionReconciler) transient(ctx context.Context, s *sessState, err error) (ctrl.Result, error) {
	st := s.st
	st.FailedAttempts++
	retryAfter, _ := upstream.RetryAfterOf(err)
	delay := r.Backoff.RetryDelay(st.FailedAttempts, r.Rand(), retryAfter, keepAliveInterval(s.sess))
	next := s.now.Add(delay)
	st.NextKeepAliveTime = timePtr(next)
	msg := err.Error()
	r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable,
		fmt.Sprintf("%s (attempt %d); next try at %s", msg, st.FailedAttempts, renewal.Truncate(next).UTC().Format(time.RFC3339)))
	if st.FailedAttempts == 1 {
		r.Recorder.Eventf(s.sess, nil, corev1.EventTypeWarning, "SessionCallFailed", "CallUpstream", "%s; retrying with backoff", msg)
	}
	log.FromContext(ctx).Info("Session call failed; backing off", "error", msg, "attempt", st.FailedAttempts, "retryIn", delay)
	return ctrl.Result{RequeueAfter: delay}, nil
}

func (r *M2MSessionReconciler) secretWriteFailed(s *sessState, err error) (ctrl.Result, error) {
	if isConflict(err) {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, err.Error())
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, err
}

// writeSecret publishes the session with the app's current token.
func (r *M2MSessionReconciler) writeSecret(ctx context.Context, s *sessState, session string) error {
	_, err := r.Secrets.Apply(ctx, s.sess, s.owned, s.sess.Spec.SecretName, s.sess.Spec.SecretTemplate, map[string][]byte{
		KeySessionToken:         []byte(session),
		KeyAccessToken:          []byte(s.appTok.AccessToken),
		KeyAccessTokenExpiresAt: []byte(formatExpiry(s.appTok.ExpiresAt)),
	})
	return err
}

// finalize logs the session out when asked to, then lets the object go.
func (r *M2MSessionReconciler) finalize(ctx context.Context, sess *v1alpha1.M2MSession) error {
	if !logoutOnDelete(sess) || !controllerutil.ContainsFinalizer(sess, v1alpha1.LogoutFinalizer) {
		return releaseFinalizer(ctx, r.Client, sess, v1alpha1.LogoutFinalizer)
	}
	st := sess.Status.DeepCopy()
	s := &sessState{sess: sess, st: st, now: r.Clock.Now()}
	ready, err := r.loadApp(ctx, s)
	if err != nil {
		return err
	}
	owned, err := r.Secrets.Get(ctx, sess, sess.Spec.SecretName)
	if err != nil && !isConflict(err) {
		return err
	}
	session := ""
	if owned != nil {
		session = string(owned.Data[KeySessionToken])
	}
	switch {
	case session == "":
	case !ready:
		r.Recorder.Eventf(sess, nil, corev1.EventTypeWarning, "LogoutSkipped", "Logout", "Not logging out: the ThingSpaceApp holds no valid token; the session will idle out")
	default:
		err := s.cli.Logout(ctx, s.appTok.AccessToken, session)
		switch {
		case err == nil:
			r.Recorder.Eventf(sess, nil, corev1.EventTypeNormal, "LoggedOut", "Logout", "Logged the session out on deletion")
		case upstream.IsTransient(err):
			return err
		default:
			r.Recorder.Eventf(sess, nil, corev1.EventTypeWarning, "LogoutFailed", "Logout", "Could not log out (%s); the session will idle out", err.Error())
		}
	}
	return releaseFinalizer(ctx, r.Client, sess, v1alpha1.LogoutFinalizer)
}

// wakeAt plans the next look: the next keep-alive, or the next password reset when that comes first.
func (r *M2MSessionReconciler) wakeAt(s *sessState, next time.Time) ctrl.Result {
	if rt, ok := r.rotationTime(s); ok && rt.Before(next) {
		next = rt
	}
	return requeueAt(s.now, next)
}

func (r *M2MSessionReconciler) setReady(s *sessState, status metav1.ConditionStatus, reason, msg string) {
	setCondition(&s.st.Conditions, v1alpha1.ConditionReady, status, reason, msg, s.sess.Generation, s.now)
}

func keepAliveInterval(sess *v1alpha1.M2MSession) time.Duration {
	if i := sess.Spec.KeepAlive.Interval; i != nil && i.Duration > 0 {
		return i.Duration
	}
	return defaultKeepAlive
}

func logoutOnDelete(sess *v1alpha1.M2MSession) bool {
	return sess.Spec.LogoutOnDelete == nil || *sess.Spec.LogoutOnDelete
}

// rotationTime is when the password is next due for a reset: an interval after the last reset, or
// after creation.
func (r *M2MSessionReconciler) rotationTime(s *sessState) (time.Time, bool) {
	if s.sess.Spec.PasswordRotation == nil || (s.st.PasswordRotationRejectedVersion != "" && s.st.PasswordRotationRejectedVersion == s.credsRV) {
		return time.Time{}, false
	}
	from := s.sess.CreationTimestamp.Time
	if s.st.PasswordRotatedAt != nil {
		from = s.st.PasswordRotatedAt.Time
	}
	return from.Add(s.sess.Spec.PasswordRotation.Interval.Duration), true
}

func (r *M2MSessionReconciler) rotationDue(s *sessState) bool {
	if v := s.st.PasswordRotationRejectedVersion; v != "" && v == s.credsRV {
		return false
	}
	t, ok := r.rotationTime(s)
	return ok && !s.now.Before(t)
}
