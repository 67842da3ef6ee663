package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/announce"
	"github.com/credops/thingspace-operator/internal/lockout"
	"github.com/credops/thingspace-operator/internal/logins"
	"github.com/credops/thingspace-operator/internal/memo"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/passwords"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/secrets"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
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

// M2MSessionReconciler keeps each M2MSession's UWS session alive in its Secret. It gathers what a pass
// needs (sessState), asks policy.DecideSession, acts (m2msession_controller_actions.go, the password
// reset in m2msession_controller_password.go, deletion in m2msession_controller_finalize.go) and
// records the outcome through the status memory before anything can repeat it.
type M2MSessionReconciler struct {
	Deps
	// Broker is the ThingSpaceApps' token broker: a Bearer the gateway rejects is replaced through it.
	Broker *tokenbroker.Broker
	// Announced holds the apps' tokens not yet in their Secrets (package announce); nil: none.
	Announced *announce.Board
	// Gate guards UWS usernames against lockout, across sessions.
	Gate *lockout.Gate
	// Pending holds reset passwords not yet stored in their credentials Secret.
	Pending *passwords.Store
	// unpublished holds logins whose Secret write failed, for the retry to publish (package logins).
	unpublished logins.Unpublished
	// statuses remembers the status last decided and stored per session (see memo.Statuses).
	statuses *memo.Statuses[v1alpha1.M2MSessionStatus]
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
	if sess.Spec.ClusterSessionRef != nil {
		// A consumer of a ClusterM2MSession: no login of its own (m2msession_controller_consumer.go).
		return r.consume(ctx, sess)
	}
	return runSession(ctx, r, sessionPass[v1alpha1.M2MSessionStatus]{
		obj: sess, status: &sess.Status, mem: r.statuses, logout: logoutOnDelete(sess),
		state: func(st, cached *v1alpha1.M2MSessionStatus) *sessState {
			return &sessState{sess: sess, obj: sess, st: st, cached: cached, credsNS: sess.Namespace, apps: r.namespacedApps(sess.Namespace)}
		},
		withStatus: func(s v1alpha1.M2MSessionStatus) client.Object {
			c := sess.DeepCopy()
			c.Status = s
			return c
		},
	})
}

// sessState is what one reconcile works with.
type sessState struct {
	// sess is the session as the core sees it: the M2MSession, or a ClusterM2MSession's view (its
	// metadata and the M2MSessionSpec it inlines; no namespace).
	sess *v1alpha1.M2MSession
	// obj is the object reconciled (sess itself, or the ClusterM2MSession): it owns the Secret (a
	// cluster-scoped owner's is in the Writer's ClusterNamespace), holds the finalizer, and events are
	// about it.
	obj client.Object
	// credsNS is where the credentials Secret is: the session's namespace, or the cluster resource
	// namespace.
	credsNS string
	// apps reads the app appRef names.
	apps    appSource
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
	// cached is the status as the cache holds it: the API server's copy, as far as this pass knows.
	cached *v1alpha1.M2MSessionStatus

	// refused says why the app's endpoint may not be called; set by loadApp.
	refused string
	// waitApp is set by loadApp when the app's controller is replacing its expired token: look again
	// then (its announcement usually comes first), the status unchanged.
	waitApp time.Time
	// handover: this pass logs in because the app's token changed under a valid one (its retries are
	// planned before that one expires).
	handover bool
}

// facts is what the policy decides from.
func (s *sessState) facts() policy.SessionFacts {
	return policy.SessionFacts{Now: s.now, Spec: s.sess.Spec, Created: s.sess.CreationTimestamp.Time, Generation: s.sess.Generation,
		Annotations: s.sess.Annotations, Status: *s.st, HasSession: s.session != "", CredentialsVersion: s.credsRV,
		AppTokenDigest: policy.TokenDigest(s.appTok.AccessToken), AppHasStandby: s.app != nil && s.app.Spec.StandbyCredentialsSecretRef != nil,
		SecretBearerStale: s.owned != nil && string(s.owned.Data[KeyAccessToken]) != s.appTok.AccessToken,
		UnansweredResetStored: s.st.PasswordResetUnanswered != nil && s.cached.PasswordResetUnanswered != nil &&
			s.cached.PasswordResetUnanswered.SentAt.Equal(&s.st.PasswordResetUnanswered.SentAt)}
}

// sync gathers, decides and acts.
func (r *M2MSessionReconciler) sync(ctx context.Context, s *sessState) (ctrl.Result, error) {
	sess, st := s.sess, s.st

	// A password from a reset that has not landed yet comes before anything else.
	if res, stored := r.storePending(s); !stored {
		return res, nil
	}
	ready, err := r.loadApp(ctx, s)
	if err == nil && !ready && !s.waitApp.IsZero() {
		return r.requeueAt(s.waitApp), nil
	}
	if err != nil || !ready {
		return ctrl.Result{}, err
	}
	s.owned, err = r.Secrets.Get(ctx, s.obj, sess.Spec.SecretName)
	if isConflict(err) {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, err.Error())
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	if s.owned != nil {
		s.session = string(s.owned.Data[KeySessionToken])
	}
	if s.session == "" && st.LastLoginTime != nil {
		// Logged in before, yet no session in the cache: our own write may not have reached it yet. A
		// login costs the platform a session, so ask the API server before making one.
		if s.owned, err = r.Secrets.Fresh(ctx, s.obj, sess.Spec.SecretName, nil); isConflict(err) {
			r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, err.Error())
			return ctrl.Result{}, nil
		} else if err != nil {
			return ctrl.Result{}, err
		}
		if s.owned != nil {
			s.session = string(s.owned.Data[KeySessionToken])
		}
	}
	r.adoptHeldLogin(ctx, s)
	if ok, err := r.loadCredentials(ctx, s); !ok {
		return ctrl.Result{}, err
	}
	r.observeGate(s)
	if st.PasswordResetUnanswered != nil && policy.UnansweredReset(s.facts()) == nil {
		// The credentials Secret changed since the unanswered reset: a person has dealt with it.
		st.PasswordResetUnanswered = nil
	}

	d := policy.DecideSession(s.facts())
	if d.Republish {
		if err := r.writeSecret(ctx, s, s.session); err != nil {
			return r.secretWriteFailed(s, err)
		}
	}
	switch d.Action {
	case policy.SessionWait:
		if d.Next.IsZero() {
			return ctrl.Result{}, nil
		}
		return r.requeueAt(d.Next), nil
	case policy.SessionLogin:
		return r.login(ctx, s, d.RefreshRequest)
	case policy.SessionResetPassword:
		return r.rotatePassword(ctx, s)
	case policy.SessionCheckPassword:
		return r.checkPassword(ctx, s)
	case policy.SessionRelogin:
		// No account to read: a fresh login before the idle timeout; the old session idles out.
		return r.login(ctx, s, "")
	case policy.SessionHandover:
		// The old pair stays in the Secret until the new one replaces it in one write.
		s.handover = true
		return r.login(ctx, s, "")
	case policy.SessionKeepAlive:
		return r.keepAlive(ctx, s)
	}
	// Nothing due: make sure the Secret carries the app's current token, which follows app rotations.
	if err := r.writeSecret(ctx, s, s.session); err != nil {
		return r.secretWriteFailed(s, err)
	}
	r.setReady(s, metav1.ConditionTrue, v1alpha1.ReasonSessionValid, "The Secret holds a live session")
	return r.requeueAt(d.Next), nil
}

// observeGate merges this session's remembered failure count into the username's gate and records the
// gate's count back: every session of the username carries the latest count, each copy stamped with
// when it was observed, so a stale one never re-arms the gate (issue 8 scenario 4).
func (r *M2MSessionReconciler) observeGate(s *sessState) {
	st := s.st
	refused := ""
	if st.RejectedCredentialsVersion != "" && st.RejectedCredentialsVersion == s.credsRV {
		refused = lockout.Digest(s.creds.Username, s.creds.Password)
	}
	var at time.Time
	if st.LoginFailuresObservedAt != nil {
		at = st.LoginFailuresObservedAt.Time
	}
	r.Gate.Observe(s.gateKey, lockout.Count{Failures: int(st.ConsecutiveLoginFailures), At: at}, refused)
	r.trackLogins(s)
	r.recordCount(s, r.Gate.Count(s.gateKey))
}

// recordCount writes the username's count into the status.
func (r *M2MSessionReconciler) recordCount(s *sessState, c lockout.Count) {
	s.st.ConsecutiveLoginFailures = int32(c.Failures)
	s.st.LoginFailuresObservedAt = nil
	if !c.At.IsZero() {
		s.st.LoginFailuresObservedAt = timePtr(c.At)
	}
}

// loadApp reads the referenced ThingSpaceApp, its client and its current token. false: not usable yet
// (condition set; the app and its Secret are watched).
func (r *M2MSessionReconciler) loadApp(ctx context.Context, s *sessState) (bool, error) {
	app, owner, err := s.apps.get(ctx, s.sess.Spec.AppRef.Name)
	if err != nil {
		if refused, ok := errors.AsType[*notAllowedError](err); ok {
			r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonNotAllowed, refused.Error())
			return false, nil
		}
		if apierrors.IsNotFound(err) {
			if msg := r.appInOtherShard(ctx, s); msg != "" {
				r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonOtherShard, msg)
				return false, nil
			}
			r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonAppNotReady, fmt.Sprintf("%s %q not found", s.apps.kind, s.sess.Spec.AppRef.Name))
			return false, nil
		}
		return false, err
	}
	s.app = app
	cli, err := r.Endpoints.ThingSpace(endpointOf(app), app.Spec.CABundle)
	if err != nil {
		s.refused = s.apps.kind + " " + app.Name + ": " + err.Error()
		r.setReady(s, metav1.ConditionFalse, endpointReason(err), s.refused)
		return false, nil
	}
	s.cli = cli
	owned, err := r.Secrets.Get(ctx, owner, app.Spec.SecretName)
	if err != nil && !isConflict(err) {
		return false, err
	}
	s.appTok = heldToken(owned)
	if _, namespaced := owner.(*v1alpha1.ThingSpaceApp); namespaced && owner == app {
		// The app's controller may have a newer token than its Secret in the cache shows.
		s.appTok = r.Announced.Current(client.ObjectKeyFromObject(owner), s.appTok, s.now)
	}
	if s.appTok.AccessToken == "" || !s.now.Before(s.appTok.ExpiresAt) {
		if s.appTok.AccessToken != "" {
			ready := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady)
			if next, ok := policy.AppReplacing(ready, s.appTok.ExpiresAt, s.now); ok {
				s.waitApp = next
				return false, nil
			}
		}
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonAppNotReady, fmt.Sprintf("%s %q holds no valid token yet", s.apps.kind, app.Name))
		return false, nil
	}
	return true, nil
}

// loadCredentials reads and checks the UWS credentials. false with a nil error: unusable (condition
// set; the Secret is watched). An API error is transient and returned (issue 8 scenario 15).
func (r *M2MSessionReconciler) loadCredentials(ctx context.Context, s *sessState) (bool, error) {
	cs, err := readCredentials(ctx, r.credentialsReader(), s.credsNS, s.sess.Spec.CredentialsSecretRef.Name, credUsername, credPassword)
	if missing, ok := errors.AsType[*credentialsError](err); ok {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound, missing.Error())
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("reading the UWS credentials Secret %s: %w", s.sess.Spec.CredentialsSecretRef.Name, err)
	}
	s.creds = thingspace.UWSCredentials{Username: cs.values[credUsername], Password: cs.values[credPassword]}
	s.credsRV = cs.resourceVersion
	s.gateKey = lockout.Key(endpointOf(s.app), s.creds.Username)
	problems, warnings := thingspace.ValidateUWS(s.creds)
	if len(problems) > 0 {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonInvalidCredentials,
			"The UWS credentials break the platform's rules, so no login is attempted: "+strings.Join(problems, "; "))
		return false, nil
	}
	if len(warnings) > 0 && s.st.ObservedCredentialsVersion != s.credsRV {
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, "WeakPassword", "CheckCredentials",
			"The UWS password does not meet the policy for new passwords: %s", strings.Join(warnings, "; "))
	}
	s.st.ObservedCredentialsVersion = s.credsRV
	return true, nil
}

// writeSecret publishes the session with the app's current token; the login annotation stays as it is.
func (r *M2MSessionReconciler) writeSecret(ctx context.Context, s *sessState, session string) error {
	return r.putSecret(ctx, s, session, time.Time{})
}

// putSecret writes the Secret's data; a login's write (loggedInAt set) records the login in it too
// (policy.SessionLoginValue), so that a kill before the status write costs no second login.
func (r *M2MSessionReconciler) putSecret(ctx context.Context, s *sessState, session string, loggedInAt time.Time) error {
	exp := formatExpiry(s.appTok.ExpiresAt)
	ch := secrets.Change{Template: s.sess.Spec.SecretTemplate, Data: map[string][]byte{
		KeySessionToken:         []byte(session),
		KeyAccessToken:          []byte(s.appTok.AccessToken),
		KeyAccessTokenExpiresAt: []byte(exp),
	}}
	if !loggedInAt.IsZero() {
		ch.Annotations = map[string]string{v1alpha1.SessionLoginAnnotation: policy.SessionLoginValue(session, s.appTok.AccessToken, exp, loggedInAt)}
	}
	stored, _, err := r.Secrets.Write(ctx, s.obj, s.owned, s.sess.Spec.SecretName, ch)
	if err == nil && stored != nil {
		// A second write in the pass (the app's new token published before a keep-alive) builds on
		// this one, not on the cache's older copy (a Conflict).
		s.owned = stored
	}
	return err
}

// adoptHeldLogin takes into the status a login the session's Secret records and the status does not
// know of: its status write was lost after the Secret's (policy.AdoptHeldLogin).
func (r *M2MSessionReconciler) adoptHeldLogin(ctx context.Context, s *sessState) {
	if s.owned == nil || s.session == "" {
		return
	}
	d := s.owned.Data
	h, ok := policy.ParseHeldLogin(s.owned.Annotations[v1alpha1.SessionLoginAnnotation], s.session, string(d[KeyAccessToken]), string(d[KeyAccessTokenExpiresAt]))
	if ok && policy.AdoptHeldLogin(s.st, h, s.sess.Spec) {
		log.FromContext(ctx).Info("The Secret holds a login the status does not record (its status write was lost); taking it from the Secret", "loggedInAt", h.At)
	}
}

func (r *M2MSessionReconciler) secretWriteFailed(s *sessState, err error) (ctrl.Result, error) {
	if isConflict(err) {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, err.Error())
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, err
}

// wakeAt plans the next look: the next keep-alive, or the next password reset when that comes first.
func (r *M2MSessionReconciler) wakeAt(s *sessState, next time.Time) ctrl.Result {
	return r.requeueAt(policy.SessionWake(s.facts(), next))
}

func (r *M2MSessionReconciler) setReady(s *sessState, status metav1.ConditionStatus, reason, msg string) {
	setCondition(&s.st.Conditions, v1alpha1.ConditionReady, status, reason, msg, s.sess.Generation, s.now)
}

func logoutOnDelete(sess *v1alpha1.M2MSession) bool {
	return sess.Spec.LogoutOnDelete == nil || *sess.Spec.LogoutOnDelete
}
