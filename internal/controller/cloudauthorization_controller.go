package controller

import (
	"context"
	"errors"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/cloudapi"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/secrets"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// KeyRefreshToken is the data key of the refresh token in a CloudAuthorization's Secret; the other keys
// are those of a ThingSpaceApp's Secret.
const KeyRefreshToken = v1alpha1.SecretKeyRefreshToken

// CloudAuthorizationReconciler keeps each CloudAuthorization's tokens valid in its Secret, and asks for
// consent (status.authorizationURL) when it has no usable refresh token.
//
// Unlike the other kinds it reads its object and its Secret past the caches on every pass. Refresh
// tokens rotate: acting on a stale Secret would send a dead refresh token (and lose the grant), and the
// OAuth2 callback, possibly served by another replica, writes status too. Every write is conditional on
// the resourceVersion it was decided from. Passes are rare (one per refresh), so the reads are cheap.
type CloudAuthorizationReconciler struct {
	Deps
	// Consent issues authorization URLs; the callback handler shares it.
	Consent *Consent
	// InFlightBound is how long a refresh marker left by another process is honoured before that refresh
	// counts as interrupted. It must exceed the longest a refresh request can take.
	InFlightBound time.Duration

	unstored *unstoredTokens
}

// +kubebuilder:rbac:groups=thingspace.credops.io,resources=cloudauthorizations,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=thingspace.credops.io,resources=cloudauthorizations/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one CloudAuthorization's Secret and status up to date and says when to look again.
func (r *CloudAuthorizationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ca := &v1alpha1.CloudAuthorization{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, ca); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.ForgetCloud(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, ignoreShutdown(ctx, err)
	}
	if !ca.DeletionTimestamp.IsZero() {
		// Nothing to undo upstream (Verizon Cloud has no revoke API); the Secret goes with its owner.
		r.unstored.forget(ca.UID)
		return ctrl.Result{}, nil
	}
	st := ca.Status.DeepCopy()
	res, syncErr := r.sync(ctx, ca, st)
	// A refresh already stored must get its status even while the manager shuts down, or a restart
	// would act on the same refresh request again.
	statusCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := patchCloudStatus(statusCtx, r.Client, ca, st); err != nil {
		return ctrl.Result{}, err
	}
	recordCloudMetrics(ca, st)
	if syncErr != nil {
		return ctrl.Result{}, ignoreShutdown(ctx, syncErr)
	}
	return res, nil
}

// ignoreShutdown drops an error caused by the manager shutting down: nothing is retried in this process,
// and logging it as a reconcile error on every SIGTERM is noise.
func ignoreShutdown(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// patchCloudStatus writes st when it differs from ca's status, conditional on ca's resourceVersion:
// another writer (the callback, on any replica) must not be overwritten blindly.
func patchCloudStatus(ctx context.Context, c client.Client, ca *v1alpha1.CloudAuthorization, st *v1alpha1.CloudAuthorizationStatus) error {
	if equality.Semantic.DeepEqual(&ca.Status, st) {
		return nil
	}
	updated := ca.DeepCopy()
	updated.Status = *st
	if err := c.Status().Patch(ctx, updated, client.MergeFromWithOptions(ca, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	ca.Status, ca.ResourceVersion = updated.Status, updated.ResourceVersion
	return nil
}

// cloudPass is what one reconcile works with.
type cloudPass struct {
	ca     *v1alpha1.CloudAuthorization
	st     *v1alpha1.CloudAuthorizationStatus
	now    time.Time
	cl     *cloudapi.Client
	creds  cloudapi.Credentials
	credsV string         // resourceVersion of the credentials Secret
	sec    *corev1.Secret // the target Secret as read past the cache; nil when absent
}

// sync does the work; it only ever returns a Result with a nil error or an error with an empty Result.
func (r *CloudAuthorizationReconciler) sync(ctx context.Context, ca *v1alpha1.CloudAuthorization, st *v1alpha1.CloudAuthorizationStatus) (ctrl.Result, error) {
	p := &cloudPass{ca: ca, st: st, now: r.Clock.Now()}
	var err error
	if p.cl, err = r.Endpoints.Cloud(cloudEndpointOf(ca), ca.Spec.CABundle); err != nil {
		r.setReady(p, metav1.ConditionFalse, v1alpha1.ReasonInvalidEndpoint, err.Error())
		return ctrl.Result{}, nil
	}
	cs, err := readCredentials(ctx, r.APIReader, ca.Namespace, ca.Spec.CredentialsSecretRef.Name, credKey, credSecret)
	var missing *credentialsError
	if errors.As(err, &missing) {
		r.setReady(p, metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound, missing.Error())
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	p.creds = cloudapi.Credentials{Key: cs.values[credKey], Secret: cs.values[credSecret]}
	p.credsV = cs.resourceVersion

	p.sec, err = r.Secrets.Fresh(ctx, ca, ca.Spec.SecretName, adoptable)
	if isConflict(err) {
		r.setReady(p, metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, err.Error()+adoptHint)
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}

	// Tokens this process obtained but could not store yet come before anything else: the refresh token
	// in the Secret is already dead.
	if u, ok := r.unstored.get(ca.UID); ok {
		return r.storeRefreshed(ctx, p, u)
	}
	if started, ok := refreshMarker(p.sec); ok {
		if bound := started.Add(r.InFlightBound); p.now.Before(bound) {
			// Another process (a previous incarnation, an old leader) may still be waiting for its answer.
			return requeueAt(p.now, bound), nil
		}
		return r.reauthorize(ctx, p, "A refresh was interrupted before its answer was stored; Verizon may have rotated the refresh token, which is never sent twice")
	}

	if p.sec == nil || len(p.sec.Data[KeyRefreshToken]) == 0 {
		// A refresh request has nothing to act on; it must not fire once consent arrives.
		st.ObservedRefreshRequest = ca.Annotations[v1alpha1.RefreshRequestedAnnotation]
		return r.awaitConsent(ctx, p)
	}

	if st.RejectedCredentialsVersion != "" {
		if st.RejectedCredentialsVersion == p.credsV && gatedByGeneration(st.Conditions, v1alpha1.ConditionReady, ca.Generation) {
			return ctrl.Result{}, nil
		}
		st.RejectedCredentialsVersion = ""
	}
	st.AuthorizationURL, st.AuthorizationURLExpiresAt = "", nil
	r.setAuthorized(p, metav1.ConditionTrue, v1alpha1.ReasonGranted, "The operator holds a refresh token for this app")

	held := heldToken(p.sec)
	issued := refreshedAt(p.sec, st)
	refreshReq := ca.Annotations[v1alpha1.RefreshRequestedAnnotation]
	manual := refreshReq != "" && refreshReq != st.ObservedRefreshRequest
	plan := r.plannedRefresh(p, held, issued)
	// A failed refresh stays due until one succeeds: its retry slot is in renewalTime.
	due := held.AccessToken == "" || !p.now.Before(plan) || manual || st.FailedRefreshAttempts > 0

	// After a failure the next refresh waits for its slot, whatever woke us up.
	if due && st.FailedRefreshAttempts > 0 && st.RenewalTime != nil && p.now.Before(st.RenewalTime.Time) {
		if held.AccessToken == "" || !p.now.Before(held.ExpiresAt) {
			r.setReady(p, metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable, "No valid access token and the last refresh failed; next try at "+st.RenewalTime.UTC().Format(time.RFC3339))
		}
		return requeueAt(p.now, st.RenewalTime.Time), nil
	}
	if !due {
		st.ExpiresAt, st.RenewalTime = timePtr(held.ExpiresAt), timePtr(plan)
		if !issued.IsZero() {
			st.LastRefreshTime = timePtr(issued)
		}
		r.setReady(p, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, "The Secret holds an access token valid until "+held.ExpiresAt.UTC().Format(time.RFC3339))
		// The Secret may have been edited, or the template changed: repair it; nothing is written when it matches.
		// Adopt: Fresh accepted this Secret, a bootstrap one included.
		if _, _, err := r.Secrets.Write(ctx, ca, p.sec, ca.Spec.SecretName, secrets.Change{Template: ca.Spec.SecretTemplate, Data: p.sec.Data, Adopt: true}); err != nil && !apierrors.IsConflict(err) {
			return ctrl.Result{}, err
		}
		return requeueAt(p.now, plan), nil
	}
	if manual {
		st.ObservedRefreshRequest = refreshReq
	}
	return r.refresh(ctx, p, held)
}

// plannedRefresh is when the access token held should be replaced: the time already in status while it
// is about this token and this spec (so a restart keeps the jittered plan), otherwise a fresh one.
func (r *CloudAuthorizationReconciler) plannedRefresh(p *cloudPass, held tokenbroker.Token, issued time.Time) time.Time {
	st := p.st
	if st.RenewalTime != nil && st.ExpiresAt != nil && st.FailedRefreshAttempts == 0 &&
		st.ExpiresAt.Time.Equal(renewal.Truncate(held.ExpiresAt)) &&
		gatedByGeneration(st.Conditions, v1alpha1.ConditionReady, p.ca.Generation) {
		return st.RenewalTime.Time
	}
	if issued.IsZero() || !issued.Before(held.ExpiresAt) {
		issued = p.now // unknown issue time (a bootstrap Secret): count the lifetime from now
	}
	return renewal.RefreshTime(issued, held.ExpiresAt, durationOf(p.ca.Spec.RenewBefore), durationOf(p.ca.Spec.RefreshTokenKeepAlive), r.Rand())
}

// refresh spends the refresh token in the Secret for new tokens. The Secret first records that a refresh
// is under way; the write that stores the answer clears the record. A record found later (see sync)
// means the answer may have been lost after Verizon rotated the token, and that token is never sent
// again.
func (r *CloudAuthorizationReconciler) refresh(ctx context.Context, p *cloudPass, held tokenbroker.Token) (ctrl.Result, error) {
	// From the marker on, the reconcile's cancellation (a manager shutting down) must not cut a write
	// short: a cancelled request may still have been applied, leaving a marker nobody clears, and an
	// answer that arrives has to be stored. The writes and the upstream call carry their own bounds.
	shutdown := ctx
	ctx = context.WithoutCancel(ctx)
	marker := p.now.UTC().Format(time.RFC3339Nano)
	marked, _, err := r.Secrets.Write(ctx, p.ca, p.sec, p.ca.Spec.SecretName, secrets.Change{
		Template: p.ca.Spec.SecretTemplate, Data: p.sec.Data, Adopt: true,
		Annotations: map[string]string{v1alpha1.RefreshStartedAnnotation: marker},
	})
	if err != nil {
		return ctrl.Result{}, err // nothing was sent; a conflict means the Secret changed and is read again
	}
	p.sec = marked
	if shutdown.Err() != nil {
		// Shutting down: do not start sending; take the marker back so the next manager refreshes freely.
		return ctrl.Result{}, r.clearMarker(ctx, p)
	}
	tokens, err := p.cl.Refresh(ctx, p.creds, string(marked.Data[KeyRefreshToken]))
	received := r.Clock.Now()
	if err != nil {
		return r.refreshFailed(ctx, p, held, err)
	}
	u := unstored{
		marker:    marker,
		tokens:    tokens,
		issued:    received,
		expiresAt: renewal.Expiry(received, tokens.ExpiresIn),
	}
	if u.tokens.RefreshToken == "" {
		u.tokens.RefreshToken = string(marked.Data[KeyRefreshToken]) // not rotated: the old one lives on
	}
	r.unstored.put(p.ca.UID, u)
	return r.storeRefreshed(ctx, p, u)
}

// storeRefreshed writes refreshed tokens into the Secret and clears the refresh marker in one write.
// Until that write lands the tokens stay in memory and every pass retries it first.
func (r *CloudAuthorizationReconciler) storeRefreshed(ctx context.Context, p *cloudPass, u unstored) (ctrl.Result, error) {
	if p.sec == nil || p.sec.Annotations[v1alpha1.RefreshStartedAnnotation] != u.marker {
		// Someone replaced the Secret since (a new consent, a person's bootstrap): theirs is newer.
		r.unstored.forget(p.ca.UID)
		return ctrl.Result{RequeueAfter: renewal.MinRetryDelay}, nil
	}
	data := cloudTokenData(u.tokens, u.expiresAt)
	_, _, err := r.Secrets.Write(ctx, p.ca, p.sec, p.ca.Spec.SecretName, secrets.Change{
		Template: p.ca.Spec.SecretTemplate, Data: data, Adopt: true,
		Annotations: map[string]string{
			v1alpha1.RefreshStartedAnnotation: "",
			v1alpha1.RefreshedAtAnnotation:    u.issued.UTC().Format(time.RFC3339Nano),
		},
	})
	if err != nil {
		// Kept in memory; a conflict re-reads the Secret on the next pass, which retries at once.
		return ctrl.Result{}, err
	}
	r.unstored.forget(p.ca.UID)
	st := p.st
	r.Recorder.Eventf(p.ca, nil, corev1.EventTypeNormal, "Refreshed", "RefreshToken",
		"Refreshed the tokens in Secret %s; the access token is valid until %s", p.ca.Spec.SecretName, u.expiresAt.UTC().Format(time.RFC3339))
	log.FromContext(ctx).Info("Tokens refreshed", "secret", klog.KRef(p.ca.Namespace, p.ca.Spec.SecretName), "expiresAt", u.expiresAt.UTC())

	next := renewal.RefreshTime(u.issued, u.expiresAt, durationOf(p.ca.Spec.RenewBefore), durationOf(p.ca.Spec.RefreshTokenKeepAlive), r.Rand())
	st.ExpiresAt, st.RenewalTime, st.LastRefreshTime = timePtr(u.expiresAt), timePtr(next), timePtr(u.issued)
	st.FailedRefreshAttempts, st.LastFailureTime, st.RejectedCredentialsVersion = 0, nil, ""
	st.AuthorizationURL, st.AuthorizationURLExpiresAt = "", nil
	r.setAuthorized(p, metav1.ConditionTrue, v1alpha1.ReasonGranted, "The operator holds a refresh token for this app")
	r.setReady(p, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, "The Secret holds an access token valid until "+u.expiresAt.UTC().Format(time.RFC3339))
	return requeueAt(p.now, next), nil
}

// refreshFailed sorts a failed refresh. Unless the request may have reached Verizon unanswered, the
// refresh token is still good (Verizon answered without rotating it), so the marker is cleared.
func (r *CloudAuthorizationReconciler) refreshFailed(ctx context.Context, p *cloudPass, held tokenbroker.Token, err error) (ctrl.Result, error) {
	msg := err.Error() // upstream errors carry status and error codes only, never bodies or tokens
	switch {
	case cloudapi.Unanswered(err), answeredUnusably(err):
		return r.reauthorize(ctx, p, "A refresh got no usable answer ("+msg+"); Verizon may have rotated the refresh token, which is never sent twice")
	case cloudapi.NeedsReauthorization(err):
		return r.reauthorize(ctx, p, "Verizon refused the refresh token ("+msg+"): it was revoked, expired or already used")
	}
	if werr := r.clearMarker(ctx, p); werr != nil {
		return ctrl.Result{}, werr
	}
	st := p.st
	st.FailedRefreshAttempts++
	st.LastFailureTime = timePtr(p.now)
	switch upstream.KindOf(err) {
	case upstream.Rejected, upstream.Invalid:
		reason := v1alpha1.ReasonCredentialsRejected
		if !cloudapi.ClientRejected(err) {
			reason = v1alpha1.ReasonRequestInvalid
		}
		st.RejectedCredentialsVersion = p.credsV
		st.RenewalTime = nil
		r.setReady(p, metav1.ConditionFalse, reason, msg+"; nothing is retried until the credentials Secret or the spec changes")
		r.Recorder.Eventf(p.ca, nil, corev1.EventTypeWarning, reason, "RefreshToken", "%s", msg)
		log.FromContext(ctx).Info("Upstream refused the refresh; waiting for a change", "reason", reason, "error", msg)
		return ctrl.Result{}, nil
	}
	plan := planRetry(r.Backoff, st.FailedRefreshAttempts, r.Rand(), err, held, p.now)
	st.RenewalTime = timePtr(plan.at)
	r.setReady(p, plan.ready, plan.reason, plan.message)
	if st.FailedRefreshAttempts == 1 {
		r.Recorder.Eventf(p.ca, nil, corev1.EventTypeWarning, "RefreshFailed", "RefreshToken", "%s; retrying with backoff", msg)
	}
	log.FromContext(ctx).Info("Refresh failed; backing off", "error", msg, "attempt", st.FailedRefreshAttempts, "retryIn", plan.delay)
	return ctrl.Result{RequeueAfter: plan.delay}, nil
}

// clearMarker removes the refresh marker from a Secret whose refresh token was not sent, or was refused
// without being rotated.
func (r *CloudAuthorizationReconciler) clearMarker(ctx context.Context, p *cloudPass) error {
	_, _, err := r.Secrets.Write(ctx, p.ca, p.sec, p.ca.Spec.SecretName, secrets.Change{
		Template: p.ca.Spec.SecretTemplate, Data: p.sec.Data, Adopt: true,
		Annotations: map[string]string{v1alpha1.RefreshStartedAnnotation: ""},
	})
	return err
}

// answeredUnusably reports a 2xx whose body could not be used: Verizon accepted the refresh, so the
// refresh token that was sent has most likely been rotated.
func answeredUnusably(err error) bool {
	e, ok := errors.AsType[*upstream.Error](err)
	return ok && e.StatusCode >= 200 && e.StatusCode < 300
}

// reauthorize drops the refresh token that can no longer be used (keeping the access token, which may
// work until it expires) and asks for consent again.
func (r *CloudAuthorizationReconciler) reauthorize(ctx context.Context, p *cloudPass, why string) (ctrl.Result, error) {
	data := make(map[string][]byte, len(p.sec.Data))
	for k, v := range p.sec.Data {
		if k != KeyRefreshToken {
			data[k] = v
		}
	}
	written, _, err := r.Secrets.Write(ctx, p.ca, p.sec, p.ca.Spec.SecretName, secrets.Change{
		Template: p.ca.Spec.SecretTemplate, Data: data, Adopt: true,
		Annotations: map[string]string{v1alpha1.RefreshStartedAnnotation: ""},
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	p.sec = written
	msg := why + ". Open status.authorizationURL to authorize again, or put a new refresh token under refresh_token in the Secret"
	p.st.FailedRefreshAttempts, p.st.RenewalTime = 0, nil
	r.setAuthorized(p, metav1.ConditionFalse, v1alpha1.ReasonReauthorizationRequired, msg)
	r.Recorder.Eventf(p.ca, nil, corev1.EventTypeWarning, v1alpha1.ReasonReauthorizationRequired, "RefreshToken", "%s", why)
	log.FromContext(ctx).Info("Authorization lost; waiting for consent", "why", why)
	return r.awaitConsent(ctx, p)
}

// awaitConsent keeps a live authorization URL in status while there is no refresh token to use.
func (r *CloudAuthorizationReconciler) awaitConsent(ctx context.Context, p *cloudPass) (ctrl.Result, error) {
	st := p.st
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionAuthorized); c == nil || c.Status != metav1.ConditionFalse || !waitsForPerson(c.Reason) {
		r.setAuthorized(p, metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending,
			"Waiting for a person to consent at status.authorizationURL (or for a refresh_token in the Secret)")
	}
	authorized := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionAuthorized)
	readyReason := v1alpha1.ReasonPending
	if authorized.Reason != v1alpha1.ReasonAuthorizationPending {
		readyReason = authorized.Reason
	}
	held := heldToken(p.sec)
	if held.AccessToken != "" {
		st.ExpiresAt = timePtr(held.ExpiresAt)
	}
	r.setReady(p, metav1.ConditionFalse, readyReason, "No refresh token: "+authorized.Message)
	st.RenewalTime = nil
	if err := r.Consent.Ensure(st, p.cl, p.creds.Key, &p.ca.Spec, p.now); err != nil {
		return ctrl.Result{}, err
	}
	return requeueAt(p.now, st.AuthorizationURLExpiresAt.Time), nil
}

// waitsForPerson reports whether an Authorized=False reason already tells the person what to do.
func waitsForPerson(reason string) bool {
	switch reason {
	case v1alpha1.ReasonAuthorizationPending, v1alpha1.ReasonAccessDenied, v1alpha1.ReasonReauthorizationRequired, v1alpha1.ReasonCodeExchangeFailed:
		return true
	}
	return false
}

func (r *CloudAuthorizationReconciler) setReady(p *cloudPass, status metav1.ConditionStatus, reason, msg string) {
	setCondition(&p.st.Conditions, v1alpha1.ConditionReady, status, reason, msg, p.ca.Generation, p.now)
}

func (r *CloudAuthorizationReconciler) setAuthorized(p *cloudPass, status metav1.ConditionStatus, reason, msg string) {
	setCondition(&p.st.Conditions, v1alpha1.ConditionAuthorized, status, reason, msg, p.ca.Generation, p.now)
}

func recordCloudMetrics(ca *v1alpha1.CloudAuthorization, st *v1alpha1.CloudAuthorizationStatus) {
	var exp time.Time
	if st.ExpiresAt != nil {
		exp = st.ExpiresAt.Time
	}
	metrics.SetCloud(ca.Namespace, ca.Name,
		meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionAuthorized),
		meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionReady), exp)
}

// adoptable says whether a Secret nobody controls may be taken over: only when its owner asked with
// v1alpha1.AdoptAnnotation (bootstrap from an app already authorized elsewhere). A Secret that merely
// happens to hold a refresh_token is someone else's and never changed (issue 8 scenario 17).
func adoptable(s *corev1.Secret) bool { return s.Annotations[v1alpha1.AdoptAnnotation] == "true" }

// adoptHint completes a SecretConflict message with the way out.
const adoptHint = "; to hand a Secret the operator did not create over to it, annotate it " + v1alpha1.AdoptAnnotation + "=true"

// refreshMarker returns the start time of a refresh recorded in s.
func refreshMarker(s *corev1.Secret) (time.Time, bool) {
	if s == nil {
		return time.Time{}, false
	}
	v, ok := s.Annotations[v1alpha1.RefreshStartedAnnotation]
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, true // unreadable, but a refresh was recorded: treat it as long gone
	}
	return t, true
}

// refreshedAt is when the tokens in s were obtained: the Secret's annotation, else status.
func refreshedAt(s *corev1.Secret, st *v1alpha1.CloudAuthorizationStatus) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, s.Annotations[v1alpha1.RefreshedAtAnnotation]); err == nil {
		return t
	}
	if st.LastRefreshTime != nil {
		return st.LastRefreshTime.Time
	}
	return time.Time{}
}

func cloudTokenData(t cloudapi.Tokens, expiresAt time.Time) map[string][]byte {
	typ := t.TokenType
	if typ == "" {
		typ = "Bearer"
	}
	return map[string][]byte{
		KeyAccessToken:  []byte(t.AccessToken),
		KeyRefreshToken: []byte(t.RefreshToken),
		KeyTokenType:    []byte(typ),
		KeyExpiresAt:    []byte(formatExpiry(expiresAt)),
	}
}

func cloudEndpointOf(ca *v1alpha1.CloudAuthorization) string {
	if ca.Spec.Endpoint == "" {
		return v1alpha1.DefaultCloudEndpoint
	}
	return ca.Spec.Endpoint
}

func durationOf(d *metav1.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.Duration
}

// unstored holds refreshed tokens not yet in the Secret.
type unstored struct {
	marker    string // the refresh marker the Secret carries for this refresh
	tokens    cloudapi.Tokens
	issued    time.Time
	expiresAt time.Time
}

// unstoredTokens keeps refreshed tokens until they are stored. Losing them with the process loses the
// grant (the Secret's marker then says so), so they are retried before anything else.
type unstoredTokens struct {
	mu sync.Mutex
	m  map[types.UID]unstored
}

func newUnstoredTokens() *unstoredTokens { return &unstoredTokens{m: map[types.UID]unstored{}} }

func (u *unstoredTokens) get(uid types.UID) (unstored, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	v, ok := u.m[uid]
	return v, ok
}

func (u *unstoredTokens) put(uid types.UID, v unstored) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.m[uid] = v
}

func (u *unstoredTokens) forget(uid types.UID) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.m, uid)
}
