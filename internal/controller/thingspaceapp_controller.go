package controller

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/announce"
	"github.com/credops/thingspace-operator/internal/memo"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/secrets"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
	"github.com/credops/thingspace-operator/internal/upstream/oauth"
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
	// Announce tells the app's M2MSessions of a new token before its Secret write returns (package
	// announce); nil: they follow the Secret only.
	Announce *announce.Board
	// statuses remembers the status last written per app (see memo.Statuses).
	statuses *memo.Statuses[v1alpha1.ThingSpaceAppStatus]
	// gaveUp: tokens no handover is possible for (thingspaceapp_standby.go).
	gaveUp gaveUpHandovers
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
			r.gaveUp.forget(req.NamespacedName)
			r.statuses.Forget(req.NamespacedName)
			metrics.ForgetApp(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if app.Spec.ClusterAppRef != nil {
		return r.reconcileConsumer(ctx, app)
	}
	cached := app.Status.DeepCopy()
	known := r.statuses.Get(req.NamespacedName, app.UID, app.Status)
	app.Status = *known.DeepCopy()
	return r.pass(ctx, namespacedApp(app), r.recordApp(ctx, app, *cached))
}

// appState is what one reconcile works with.
type appState struct {
	appObject
	st  *v1alpha1.ThingSpaceAppStatus
	now time.Time
	key tokenbroker.Key // the active key set's broker key (active.key)
	// active is the key set whose token is (to be) published, other the other one when readable; sb
	// is the standby key set as gathered (thingspaceapp_standby.go).
	active     keySet
	other      *keySet
	sb         standbyInfo
	handedOver bool            // this pass published the other key set's token
	in         policy.AppInput // what the decision was made from
	secTok     string          // the token in the Secret as read, trusted or not
	owned      *corev1.Secret  // the managed Secret, nil when absent
	// sharedNote ends the Ready message when another manager's holding the key kept a rotation from
	// happening (guardRevoke), or the upstream's state deferred it (policy.CheckRotation).
	sharedNote string
	// deferTo is when a deferred renewBefore rotation is looked at again (zero: none deferred).
	deferTo time.Time
}

// sync gathers, decides (policy.DecideApp), acts and records; it only ever returns a Result with a nil
// error or an error with an empty Result.
func (r *ThingSpaceAppReconciler) sync(ctx context.Context, ao appObject, st *v1alpha1.ThingSpaceAppStatus) (ctrl.Result, error) {
	s := &appState{appObject: ao, st: st, now: r.Clock.Now()}
	app := ao.app

	iss, err := r.Endpoints.ThingSpace(endpointOf(app), app.Spec.CABundle)
	if err != nil {
		r.setReady(s, metav1.ConditionFalse, endpointReason(err), err.Error())
		return ctrl.Result{}, nil
	}

	s.owned, err = r.Secrets.Get(ctx, s.obj, app.Spec.SecretName)
	var conflict *secrets.ConflictError
	if errors.As(err, &conflict) {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, conflict.Error())
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}

	// A missing Secret or key is a condition that waits for a watch; any other error reading it is the
	// API server's and transient (issue 8 scenario 15).
	cs, err := readCredentials(ctx, r.credentialsReader(), app.Namespace, app.Spec.CredentialsSecretRef.Name, credKey, credSecret)
	var missing *credentialsError
	if errors.As(err, &missing) {
		r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound, missing.Error())
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	primary := thingspace.Credentials{Key: cs.values[credKey], Secret: cs.values[credSecret]}
	if s.sb, err = r.gatherStandby(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	s.active, s.other = chooseActive(s, keySet{name: v1alpha1.KeySetPrimary, key: tokenbroker.NewKey(endpointOf(app), primary),
		creds: primary, version: cs.resourceVersion}, s.sb)
	s.key = s.active.key
	creds := s.active.creds
	r.Broker.Subscribe(s.key, s.who)

	held, rev, revoked := r.gatherHeld(ctx, s)
	cur, _ := r.Broker.Current(s.key)
	s.in = policy.AppInput{
		Generation: app.Generation, RenewBefore: renewBefore(app), Annotations: app.Annotations, Status: st,
		CredentialsVersion: cs.resourceVersion, Held: held, HeldRevoked: revoked,
		Current: appToken(cur), Now: s.now, Jitter: r.Rand(),
		NotBefore: r.Broker.NotBefore(s.key), LastCallFailed: r.Broker.LastCallFailed(s.key),
	}
	d, err := r.guardRevoke(ctx, s, policy.DecideApp(s.in))
	if err != nil {
		return ctrl.Result{}, err
	}
	if d.ClearRejected {
		st.RejectedCredentialsVersion = ""
	}

	if res, done, err := r.handover(ctx, s, iss, d); done {
		return res, err
	}
	var res tokenbroker.Result
	switch d.Step {
	case policy.AppHold:
		return ctrl.Result{}, nil
	case policy.AppRetryLater:
		if d.Reason != "" {
			r.setReady(s, d.Ready, d.Reason, d.Message)
		}
		return r.requeueAt(d.Next), nil
	case policy.AppWait, policy.AppAdopt:
		res.Token = cur
		if d.Deferred != "" {
			s.deferTo, s.sharedNote = d.Next, s.sharedNote+"; "+d.Deferred
		}
	case policy.AppFetch:
		res, err = r.Broker.Fetch(ctx, s.key, s.who, iss, creds, app.Spec.Scope, held.AccessToken)
	case policy.AppRotate:
		res, err = r.Broker.Rotate(ctx, s.key, s.who, iss, creds, app.Spec.Scope, cur.AccessToken, d.Why)
	}
	res, err = r.fetchAgain(ctx, s, iss, creds, res, err, revoked, staleOf(d.Step, held, appToken(cur)))
	if err != nil {
		if until, ok := tokenbroker.ThrottledUntil(err); ok {
			return r.throttled(s, until, revoked), nil
		}
		if _, terminal := policy.AppTerminal(err); terminal && s.active.name == v1alpha1.KeySetStandby {
			// Renewal with the standby key set refused: recorded as the standby's; the next pass
			// renews with the primary.
			res, err := r.handoverFailed(ctx, s, s.active, err)
			return ctrl.Result{RequeueAfter: min(res.RequeueAfter, time.Second)}, err
		}
		return r.refreshFailed(ctx, s, cs.resourceVersion, err, res.Revoked || revoked)
	}
	if d.Refresh != "" {
		st.ObservedRefreshRequest = d.Refresh
	}
	if revoked && rev.By != s.who && res.Token.AccessToken != held.AccessToken {
		// Another holder's revoke ended our token: say so here too (issue 8 scenario 9).
		by := "ThingSpaceApp " + rev.By.Name
		switch rev.By.Namespace {
		case app.Namespace:
		case "":
			by = "a ClusterThingSpaceApp" // the platform's: not named to tenants
		default:
			by = "a ThingSpaceApp in another namespace" // never name objects of other namespaces
		}
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeNormal, v1alpha1.EventRevokedByOtherHolder, "RevokeToken",
			"%s revoked the token this app shared (%s); took the new one", by, rev.Why)
	}
	return r.refreshed(ctx, s, res, d.Step == policy.AppWait)
}

// gatherHeld reads back the token in the app's Secret, trusting it only as far as policy.TrustHeld
// does; a trusted one is offered to the broker (a restart reuses it). It also says whether this process
// revoked it, and who did.
func (r *ThingSpaceAppReconciler) gatherHeld(ctx context.Context, s *appState) (policy.AppToken, tokenbroker.Revocation, bool) {
	sec := secretToken(s.owned)
	s.secTok = sec.AccessToken
	sec.Want = s.key.Provenance(sec.AccessToken)
	if sec.AccessToken != "" {
		sec.WantExpiry = s.key.ExpiryProvenance(sec.AccessToken, formatExpiry(sec.ExpiresAt))
	}
	held, why := policy.TrustHeld(sec, s.st)
	if why != "" {
		log.FromContext(ctx).Info("Not using the token in the Secret", "secret", klog.KRef(s.app.Namespace, s.app.Spec.SecretName), "why", why)
	}
	if held.AccessToken == "" {
		return held, tokenbroker.Revocation{}, false
	}
	rev, revoked := r.Broker.RevokedBy(s.key, held.AccessToken)
	if !revoked {
		r.Broker.Seed(s.key, tokenbroker.Token{AccessToken: held.AccessToken, TokenType: "Bearer", IssuedAt: held.IssuedAt, ExpiresAt: held.ExpiresAt})
	}
	return held, rev, revoked
}

// refreshed writes the token into the Secret and status, and plans the next look.
func (r *ThingSpaceAppReconciler) refreshed(ctx context.Context, s *appState, res tokenbroker.Result, idle bool) (ctrl.Result, error) {
	st, tok := s.st, res.Token
	pub := policy.AppRefreshed(s.in, appToken(tok), res.RetryAt, idle)
	if !s.deferTo.IsZero() {
		pub.Next = s.deferTo
	}
	tok.ExpiresAt = pub.ExpiresAt
	if _, namespaced := s.obj.(*v1alpha1.ThingSpaceApp); namespaced && tok.AccessToken != s.secTok {
		// The sessions' Secrets need the token as much as the app's does: their writes start now, not
		// after this one has come back through the watch.
		r.Announce.Announce(client.ObjectKeyFromObject(s.obj), tok)
	}
	// Write makes no API call when the cached Secret already matches, so calling it on every pass costs
	// nothing and also repairs a Secret someone edited or a template that changed.
	_, written, err := r.Secrets.Write(ctx, s.obj, s.owned, s.app.Spec.SecretName, secrets.Change{
		Template: s.app.Spec.SecretTemplate, Data: tokenData(tok),
		Annotations: map[string]string{
			v1alpha1.ProvenanceAnnotation:       s.key.Provenance(tok.AccessToken),
			v1alpha1.ExpiryProvenanceAnnotation: s.key.ExpiryProvenance(tok.AccessToken, formatExpiry(tok.ExpiresAt)),
		},
	})
	if err != nil {
		if isConflict(err) {
			r.setReady(s, metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, err.Error())
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if written && tok.AccessToken != s.secTok && !s.handedOver {
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeNormal, v1alpha1.EventRefreshed, "WriteSecret",
			"Wrote a new token to Secret %s, valid until %s", s.app.Spec.SecretName, tok.ExpiresAt.UTC().Format(time.RFC3339))
		log.FromContext(ctx).Info("Token written", "secret", klog.KRef(s.app.Namespace, s.app.Spec.SecretName), "expiresAt", tok.ExpiresAt.UTC())
		r.warnLifetime(s, tok)
	}
	st.ExpiresAt = timePtr(tok.ExpiresAt)
	if !tok.IssuedAt.IsZero() {
		st.LastRefreshTime = timePtr(tok.IssuedAt)
	}
	st.FailedRefreshAttempts = 0
	st.RejectedCredentialsVersion = ""
	next := r.planStandby(ctx, s, tok, pub.Next)
	st.RenewalTime = timePtr(policy.RecordedRenewal(st.RenewalTime, next, !res.RetryAt.IsZero(), s.now))
	r.setReady(s, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, "The Secret holds a token valid until "+tok.ExpiresAt.UTC().Format(time.RFC3339))
	return r.requeueAt(next), nil
}

// warnLifetime says when the token's lifetime is not what the upstream announced (issue 8 scenario 18).
func (r *ThingSpaceAppReconciler) warnLifetime(s *appState, tok tokenbroker.Token) {
	switch {
	case tok.LifetimeCapped:
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, v1alpha1.EventLifetimeCapped, "WriteSecret",
			"The upstream announced a token lifetime over %s; renewing as if it were %s", oauth.MaxExpiresIn, oauth.MaxExpiresIn)
	case tok.LifetimeAssumed:
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, v1alpha1.EventLifetimeAssumed, "WriteSecret",
			"The upstream announced no token lifetime; assuming %s", oauth.AssumedExpiresIn)
	}
}

// refreshFailed records an upstream failure and decides (policy.AppFailed) between waiting for a change
// and backing off. revoked says the token in the Secret is dead although unexpired.
func (r *ThingSpaceAppReconciler) refreshFailed(ctx context.Context, s *appState, credsVersion string, err error, revoked bool) (ctrl.Result, error) {
	st := s.st
	failures := policy.RecordFailure(&st.RefreshStatus, s.now)
	// Planned from the answer's arrival, not the pass's start: Retry-After counts from the answer.
	f := policy.AppFailed(r.Backoff, failures, r.Rand(), err, s.in.Held, revoked, r.Clock.Now())
	if revoked && st.ExpiresAt != nil && st.ExpiresAt.After(s.now) {
		// The token ended now: the status must not say otherwise, and after a restart the Secret's
		// expiry is not believed past it (policy.TrustHeld).
		st.ExpiresAt = timePtr(s.now)
	}
	if f.Terminal {
		st.RejectedCredentialsVersion = credsVersion
		st.RenewalTime = nil
		r.setReady(s, metav1.ConditionFalse, f.Reason, f.Message)
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, f.Reason, "RequestToken", "%s", err.Error())
		log.FromContext(ctx).Info("Upstream refused the credentials; waiting for a change", "reason", f.Reason, "error", err.Error())
		return ctrl.Result{}, nil
	}
	st.RenewalTime = timePtr(f.Retry.At)
	ready := metav1.ConditionFalse
	if f.Retry.Ready {
		ready = metav1.ConditionTrue
	}
	r.setReady(s, ready, f.Reason, f.Message)
	if f.Warn {
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, v1alpha1.EventRefreshFailed, "RequestToken", "%s; retrying with backoff", err.Error())
	}
	log.FromContext(ctx).Info("Token refresh failed; backing off", "error", err.Error(), "attempt", failures, "retryIn", f.Retry.Delay)
	return ctrl.Result{RequeueAfter: f.Retry.Delay}, nil
}

// recordMetrics records obj's series; a cluster-scoped object's namespace label is empty.
func (r *ThingSpaceAppReconciler) recordMetrics(obj client.Object, st *v1alpha1.ThingSpaceAppStatus) {
	metrics.SetApp(obj.GetNamespace(), obj.GetName(), refreshState(st.Conditions, &st.RefreshStatus))
}

func (r *ThingSpaceAppReconciler) setReady(s *appState, status metav1.ConditionStatus, reason, msg string) {
	if reason == v1alpha1.ReasonTokenValid {
		msg += s.sharedNote
	}
	setCondition(&s.st.Conditions, v1alpha1.ConditionReady, status, reason, msg, s.app.Generation, s.now)
}

// secretToken reads the token and its provenance back from a managed Secret, untrusted.
func secretToken(s *corev1.Secret) policy.SecretToken {
	t := heldToken(s)
	if t.AccessToken == "" {
		return policy.SecretToken{}
	}
	return policy.SecretToken{AccessToken: t.AccessToken, ExpiresAt: t.ExpiresAt, Provenance: s.Annotations[v1alpha1.ProvenanceAnnotation],
		ExpiryProvenance: s.Annotations[v1alpha1.ExpiryProvenanceAnnotation]}
}

func appToken(t tokenbroker.Token) policy.AppToken {
	return policy.AppToken{AccessToken: t.AccessToken, IssuedAt: t.IssuedAt, ExpiresAt: t.ExpiresAt}
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
