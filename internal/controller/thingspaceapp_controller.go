package controller

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/memo"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/secrets"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// Data keys of the Secret a ThingSpaceApp writes. Workloads mount them as files.
const (
	KeyAccessToken = v1alpha1.SecretKeyAccessToken
	KeyTokenType   = v1alpha1.SecretKeyTokenType
	KeyExpiresAt   = v1alpha1.SecretKeyExpiresAt
)

// Data keys of the credentials Secret a ThingSpaceApp references.
const (
	credKey    = v1alpha1.CredentialsKeyKey
	credSecret = v1alpha1.CredentialsKeySecret
)

// ThingSpaceAppReconciler keeps each ThingSpaceApp's token valid in its Secret.
type ThingSpaceAppReconciler struct {
	Deps
	Broker *tokenbroker.Broker
	// statuses remembers the status last written per app (see memo.Statuses).
	statuses *memo.Statuses[v1alpha1.ThingSpaceAppStatus]
}

// +kubebuilder:rbac:groups=thingspace.credops.io,resources=thingspaceapps,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=thingspace.credops.io,resources=thingspaceapps/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=thingspace.credops.io,resources=thingspaceapps/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one ThingSpaceApp's Secret and status up to date and says when to look again.
func (r *ThingSpaceAppReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	app := &v1alpha1.ThingSpaceApp{}
	if err := r.Get(ctx, req.NamespacedName, app); err != nil {
		if apierrors.IsNotFound(err) {
			r.Broker.Unsubscribe(req.NamespacedName)
			r.statuses.Forget(req.NamespacedName)
			metrics.ForgetApp(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !app.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, app)
	}
	if err := syncFinalizer(ctx, r.Client, app, v1alpha1.RevokeFinalizer, app.Spec.RevokeOnDelete); err != nil {
		return ctrl.Result{}, err
	}

	cached := app.Status.DeepCopy()
	known := r.statuses.Get(req.NamespacedName, app.UID, app.Status)
	app.Status = *known.DeepCopy()
	st := app.Status.DeepCopy()
	res, syncErr := r.sync(ctx, app, st)
	if err := memo.Record(ctx, r.Client, r.statuses, app, *cached, *st, func(s v1alpha1.ThingSpaceAppStatus) client.Object {
		c := app.DeepCopy()
		c.Status = s
		return c
	}); err != nil {
		return ctrl.Result{}, err
	}
	r.recordMetrics(app, st)
	if syncErr != nil {
		return ctrl.Result{}, syncErr
	}
	return res, nil
}

// appState is what one reconcile works with.
type appState struct {
	app   *v1alpha1.ThingSpaceApp
	st    *v1alpha1.ThingSpaceAppStatus
	now   time.Time
	who   types.NamespacedName
	held  tokenbroker.Token // the token in the Secret, if any
	owned *corev1.Secret    // the managed Secret, nil when absent
}

// sync does the work; it only ever returns a Result with a nil error or an error with an empty Result.
func (r *ThingSpaceAppReconciler) sync(ctx context.Context, app *v1alpha1.ThingSpaceApp, st *v1alpha1.ThingSpaceAppStatus) (ctrl.Result, error) {
	s := &appState{app: app, st: st, now: r.Clock.Now(), who: client.ObjectKeyFromObject(app)}

	iss, err := r.Endpoints.ThingSpace(endpointOf(app), app.Spec.CABundle)
	if err != nil {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonInvalidEndpoint, err.Error())
		return ctrl.Result{}, nil
	}

	s.owned, err = r.Secrets.Get(ctx, app, app.Spec.SecretName)
	var conflict *secrets.ConflictError
	if errors.As(err, &conflict) {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, conflict.Error())
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	s.held = heldToken(s.owned)

	cs, err := readCredentials(ctx, r.APIReader, app.Namespace, app.Spec.CredentialsSecretRef.Name, credKey, credSecret)
	var missing *credentialsError
	if errors.As(err, &missing) {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound, missing.Error())
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	creds := thingspace.Credentials{Key: cs.values[credKey], Secret: cs.values[credSecret]}
	key := tokenbroker.NewKey(endpointOf(app), creds)
	r.Broker.Subscribe(key, s.who)

	// Rejected credentials or a refused request: nothing goes upstream until the credentials Secret or
	// the spec changes. A wrong secret must never turn into a request loop.
	if st.RejectedCredentialsVersion != "" {
		if st.RejectedCredentialsVersion == cs.resourceVersion && gatedByGeneration(st.Conditions, v1alpha1.ConditionReady, app.Generation) {
			return ctrl.Result{}, nil
		}
		st.RejectedCredentialsVersion = ""
	}

	if s.held.AccessToken != "" {
		if s.held.IssuedAt.IsZero() && st.LastRefreshTime != nil {
			s.held.IssuedAt = st.LastRefreshTime.Time
		}
		r.Broker.Seed(key, s.held)
	}
	cur, valid := r.Broker.Current(key)
	refreshReq := app.Annotations[v1alpha1.RefreshRequestedAnnotation]
	manual := refreshReq != "" && refreshReq != st.ObservedRefreshRequest
	plan := r.plannedRenewal(s, cur)

	type step int
	const (
		wait step = iota
		adopt
		fetch
		rotate
	)
	var next step
	switch {
	case !valid:
		next = fetch
	case manual:
		next = rotate
	case cur.AccessToken != s.held.AccessToken:
		next = adopt
	case app.Spec.RenewBefore != nil && !s.now.Before(plan):
		next = rotate
	default:
		next = wait
	}

	// After a failure the next upstream call waits for its slot, whatever woke us up.
	if (next == fetch || next == rotate) && st.FailedRefreshAttempts > 0 && st.RenewalTime != nil && s.now.Before(st.RenewalTime.Time) {
		if s.held.AccessToken != "" && !s.now.Before(s.held.ExpiresAt) {
			r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable, "The token has expired and the last refresh failed; next try at "+st.RenewalTime.UTC().Format(time.RFC3339))
		}
		return requeueAt(s.now, st.RenewalTime.Time), nil
	}

	var res tokenbroker.Result
	switch next {
	case wait:
		res.Token = cur
	case adopt:
		res.Token = cur
	case fetch:
		res, err = r.Broker.Fetch(ctx, key, s.who, iss, creds, app.Spec.Scope, s.held.AccessToken)
	case rotate:
		res, err = r.Broker.Rotate(ctx, key, s.who, iss, creds, app.Spec.Scope, cur.AccessToken)
	}
	if err != nil {
		return r.refreshFailed(ctx, s, cs.resourceVersion, err)
	}
	if manual {
		st.ObservedRefreshRequest = refreshReq
	}
	return r.refreshed(ctx, s, res, next == wait)
}

// plannedRenewal is when the token cur should be replaced: the time already in status while it is about
// this token and this spec (so a restart keeps the jittered plan), otherwise a fresh computation.
func (r *ThingSpaceAppReconciler) plannedRenewal(s *appState, cur tokenbroker.Token) time.Time {
	if renewBefore(s.app) == 0 {
		return cur.ExpiresAt // no window: at expiry, precisely; nothing to keep stable
	}
	st := s.st
	if st.RenewalTime != nil && st.ExpiresAt != nil && st.ExpiresAt.Time.Equal(renewal.Truncate(cur.ExpiresAt)) &&
		gatedByGeneration(st.Conditions, v1alpha1.ConditionReady, s.app.Generation) {
		return st.RenewalTime.Time
	}
	return renewal.RenewalTime(cur.IssuedAt, cur.ExpiresAt, renewBefore(s.app), r.Rand())
}

// refreshed writes the token into the Secret and status, and plans the next look.
func (r *ThingSpaceAppReconciler) refreshed(ctx context.Context, s *appState, res tokenbroker.Result, idle bool) (ctrl.Result, error) {
	st, tok := s.st, res.Token
	if tok.AccessToken == s.held.AccessToken && !tok.ExpiresAt.After(s.held.ExpiresAt) {
		tok.ExpiresAt = s.held.ExpiresAt // the same token again: keep the (earlier) expiry already published
	}
	// Apply writes nothing when the cached Secret already matches, so calling it on every pass costs no
	// API call and also repairs a Secret someone edited or a template that changed.
	written, err := r.Secrets.Apply(ctx, s.app, s.owned, s.app.Spec.SecretName, s.app.Spec.SecretTemplate, tokenData(tok))
	if err != nil {
		if isConflict(err) {
			r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, err.Error())
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if written && tok.AccessToken != s.held.AccessToken {
		r.Recorder.Eventf(s.app, nil, corev1.EventTypeNormal, "Refreshed", "WriteSecret",
			"Wrote a new token to Secret %s, valid until %s", s.app.Spec.SecretName, tok.ExpiresAt.UTC().Format(time.RFC3339))
		log.FromContext(ctx).Info("Token written", "secret", klog.KRef(s.app.Namespace, s.app.Spec.SecretName), "expiresAt", tok.ExpiresAt.UTC())
	}

	var next time.Time
	switch {
	case !res.RetryAt.IsZero():
		// The platform still hands out the token we wanted replaced: it is valid (it was just vouched
		// for); ask again shortly.
		next = res.RetryAt
	case st.FailedRefreshAttempts == 0 && idle:
		next = r.plannedRenewal(s, tok)
	default:
		next = renewal.RenewalTime(tok.IssuedAt, tok.ExpiresAt, renewBefore(s.app), r.Rand())
	}
	st.ExpiresAt = timePtr(tok.ExpiresAt)
	st.RenewalTime = timePtr(next)
	if !tok.IssuedAt.IsZero() {
		st.LastRefreshTime = timePtr(tok.IssuedAt)
	}
	st.FailedRefreshAttempts = 0
	st.RejectedCredentialsVersion = ""
	r.setReady(s, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, "The Secret holds a token valid until "+tok.ExpiresAt.UTC().Format(time.RFC3339))
	return requeueAt(s.now, next), nil
}

// refreshFailed records an upstream failure and decides between waiting for a change and backing off.
func (r *ThingSpaceAppReconciler) refreshFailed(ctx context.Context, s *appState, credsVersion string, err error) (ctrl.Result, error) {
	st := s.st
	st.FailedRefreshAttempts++
	st.LastFailureTime = timePtr(s.now)
	msg := err.Error() // upstream errors carry status and error codes only, never bodies or secrets
	switch upstream.KindOf(err) {
	case upstream.Rejected, upstream.Invalid:
		reason := v1alpha1.ReasonCredentialsRejected
		if upstream.IsInvalid(err) {
			reason = v1alpha1.ReasonRequestInvalid
		}
		st.RejectedCredentialsVersion = credsVersion
		st.RenewalTime = nil
		r.setReady(s, metav1.ConditionFalse, reason, msg+"; nothing is retried until the credentials Secret or the spec changes")
		r.Recorder.Eventf(s.app, nil, corev1.EventTypeWarning, reason, "RequestToken", "%s", msg)
		log.FromContext(ctx).Info("Upstream refused the credentials; waiting for a change", "reason", reason, "error", msg)
		return ctrl.Result{}, nil
	}
	plan := planRetry(r.Backoff, st.FailedRefreshAttempts, r.Rand(), err, s.held, s.now)
	st.RenewalTime = timePtr(plan.at)
	r.setReady(s, plan.ready, plan.reason, plan.message)
	if st.FailedRefreshAttempts == 1 {
		r.Recorder.Eventf(s.app, nil, corev1.EventTypeWarning, "RefreshFailed", "RequestToken", "%s; retrying with backoff", msg)
	}
	log.FromContext(ctx).Info("Token refresh failed; backing off", "error", msg, "attempt", st.FailedRefreshAttempts, "retryIn", plan.delay)
	return ctrl.Result{RequeueAfter: plan.delay}, nil
}

// finalize revokes the token of an app with revokeOnDelete, then lets it go.
func (r *ThingSpaceAppReconciler) finalize(ctx context.Context, app *v1alpha1.ThingSpaceApp) error {
	who := client.ObjectKeyFromObject(app)
	if !controllerutil.ContainsFinalizer(app, v1alpha1.RevokeFinalizer) {
		r.Broker.Unsubscribe(who)
		return nil
	}
	if app.Spec.RevokeOnDelete {
		if err := r.revokeHeld(ctx, app); err != nil {
			return err
		}
	}
	r.Broker.Unsubscribe(who)
	return releaseFinalizer(ctx, r.Client, app, v1alpha1.RevokeFinalizer)
}

// revokeHeld revokes the unexpired token in the app's Secret. What cannot be revoked (no Secret,
// no credentials, credentials rejected) is reported in an event and given up on; transient failures are
// returned so the deletion is retried (at worst until the token has expired anyway).
func (r *ThingSpaceAppReconciler) revokeHeld(ctx context.Context, app *v1alpha1.ThingSpaceApp) error {
	owned, err := r.Secrets.Get(ctx, app, app.Spec.SecretName)
	if err != nil && !isConflict(err) {
		return err
	}
	held := heldToken(owned)
	if held.AccessToken == "" || !r.Clock.Now().Before(held.ExpiresAt) {
		return nil
	}
	iss, err := r.Endpoints.ThingSpace(endpointOf(app), app.Spec.CABundle)
	if err != nil {
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, "RevokeSkipped", "RevokeToken", "Not revoking the token: %s", err.Error())
		return nil
	}
	cs, err := readCredentials(ctx, r.APIReader, app.Namespace, app.Spec.CredentialsSecretRef.Name, credKey, credSecret)
	var missing *credentialsError
	if errors.As(err, &missing) {
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, "RevokeSkipped", "RevokeToken", "Not revoking the token: %s", missing.Error())
		return nil
	} else if err != nil {
		return err
	}
	creds := thingspace.Credentials{Key: cs.values[credKey], Secret: cs.values[credSecret]}
	err = r.Broker.Revoke(ctx, tokenbroker.NewKey(endpointOf(app), creds), client.ObjectKeyFromObject(app), iss, creds, held.AccessToken)
	switch {
	case err == nil:
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "Revoked", "RevokeToken", "Revoked the token on deletion")
		return nil
	case upstream.IsTransient(err) || upstream.KindOf(err) == upstream.Unknown:
		return err
	default:
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, "RevokeFailed", "RevokeToken", "Could not revoke the token: %s", err.Error())
		return nil
	}
}

func (r *ThingSpaceAppReconciler) recordMetrics(app *v1alpha1.ThingSpaceApp, st *v1alpha1.ThingSpaceAppStatus) {
	var exp, ren time.Time
	if st.ExpiresAt != nil {
		exp = st.ExpiresAt.Time
	}
	if st.RenewalTime != nil {
		ren = st.RenewalTime.Time
	}
	metrics.SetApp(app.Namespace, app.Name, meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionReady), exp, ren)
}

func (r *ThingSpaceAppReconciler) setReady(s *appState, status metav1.ConditionStatus, reason, msg string) {
	setCondition(&s.st.Conditions, v1alpha1.ConditionReady, status, reason, msg, s.app.Generation, s.now)
}

// heldToken reads the token back from a managed Secret; a Secret without a parseable token yields none.
func heldToken(s *corev1.Secret) tokenbroker.Token {
	if s == nil {
		return tokenbroker.Token{}
	}
	exp, err := time.Parse(time.RFC3339, string(s.Data[KeyExpiresAt]))
	if err != nil || len(s.Data[KeyAccessToken]) == 0 {
		return tokenbroker.Token{}
	}
	return tokenbroker.Token{AccessToken: string(s.Data[KeyAccessToken]), TokenType: string(s.Data[KeyTokenType]), ExpiresAt: exp}
}

func tokenData(t tokenbroker.Token) map[string][]byte {
	typ := t.TokenType
	if typ == "" {
		typ = "Bearer"
	}
	return map[string][]byte{
		KeyAccessToken: []byte(t.AccessToken),
		KeyTokenType:   []byte(typ),
		KeyExpiresAt:   []byte(formatExpiry(t.ExpiresAt)),
	}
}

func endpointOf(app *v1alpha1.ThingSpaceApp) string {
	if app.Spec.Endpoint == "" {
		return v1alpha1.DefaultThingSpaceEndpoint
	}
	return app.Spec.Endpoint
}

func renewBefore(app *v1alpha1.ThingSpaceApp) time.Duration {
	if app.Spec.RenewBefore == nil {
		return 0
	}
	return app.Spec.RenewBefore.Duration
}

func isConflict(err error) bool {
	var c *secrets.ConflictError
	return errors.As(err, &c)
}
