package controller

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/cloudapi"
	"github.com/credops/thingspace-operator/internal/consent"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/refreshes"
	"github.com/credops/thingspace-operator/internal/secrets"
)

// KeyRefreshToken is the data key of the refresh token in a CloudAuthorization's Secret; the other keys
// are those of a ThingSpaceApp's Secret.
const KeyRefreshToken = v1alpha1.SecretKeyRefreshToken

// CloudAuthorizationReconciler keeps each CloudAuthorization's tokens valid, and asks for consent (a link
// in the Secret `<name>-consent`, named by status.consentSecretName) when it has no usable refresh token.
// The grant (refresh token, and the operator's record of the access token) lives in `<name>-grant`;
// the Secret workloads mount (secretName) gets only the access token, its type and expiry, published
// from the grant after it is stored. It gathers, asks policy.DecideCloud, acts and records; the OAuth2
// start and callback endpoints are internal/callback.
//
// Unlike the other kinds it reads its object and its Secrets past the caches on every pass that acts.
// Refresh tokens rotate: acting on a stale Secret would send a dead refresh token (and lose the grant),
// and the OAuth2 callback, possibly served by another replica, writes status too. Every write is
// conditional on the resourceVersion it was decided from. A pass first looks from the caches (idle.go's
// probe): one that finds nothing to do there (the grant valid, nothing to write) ends with no read
// past them, which is most passes (the echoes of a refresh's own writes; every object after a restart).
type CloudAuthorizationReconciler struct {
	Deps
	// Consent issues authorization URLs; the callback handler shares it.
	Consent *consent.Store
	// InFlightBound is how long a refresh marker left by another process is honoured before that refresh
	// counts as interrupted. It must exceed the longest a refresh request can take.
	InFlightBound time.Duration
	// Refreshes remembers the markers this process wrote and how their requests ended, and the code
	// exchanges' tokens the callback could not store.
	Refreshes *refreshes.Store
	// wakeups carries the callback's requests for a pass (wake); set by SetupWithManager.
	wakeups chan event.TypedGenericEvent[*v1alpha1.CloudAuthorization]
}

// +kubebuilder:rbac:groups=thingspace.credops.io,resources=cloudauthorizations,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=thingspace.credops.io,resources=cloudauthorizations/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one CloudAuthorization's Secret and status up to date and says when to look again.
func (r *CloudAuthorizationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if res, idle := r.reconcileIdle(ctx, req); idle {
		return res, nil
	}
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
		r.Refreshes.Forget(ca.UID)
		return ctrl.Result{}, nil
	}
	st := ca.Status.DeepCopy()
	p := &cloudPass{ca: ca, st: st, now: r.Clock.Now()}
	// A refresh registered with the in-flight tracker ends after its status is written too: when the
	// lease is lost the manager stops at once, and main waits for the tracker, not for this reconcile.
	defer p.endInFlight()
	res, syncErr := r.sync(ctx, p)
	// The workload's Secret follows the grant as stored (whatever the pass did), never ahead of it.
	if err := r.publish(ctx, p); err != nil && syncErr == nil && !apierrors.IsConflict(err) {
		syncErr = err
	}
	policy.RecordProgress(&st.Conditions, &st.ObservedGeneration, ca.Generation, r.Clock.Now())
	// A refresh already stored must get its status even while the manager shuts down, or a restart
	// would act on the same refresh request again.
	statusCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := consent.PatchStatus(statusCtx, r.Client, ca, st); err != nil {
		return ctrl.Result{}, err
	}
	recordCloudMetrics(ca, st)
	if syncErr != nil {
		return ctrl.Result{}, ignoreShutdown(ctx, syncErr)
	}
	return res, nil
}

// readSecrets reads the workload's Secret and the grant Secret into p: from the caches in a probe,
// past them otherwise. stop says the pass ends here (SecretConflict set, or an error).
func (r *CloudAuthorizationReconciler) readSecrets(ctx context.Context, p *cloudPass) (stop bool, err error) {
	for _, read := range []struct {
		name string
		into **corev1.Secret
	}{{p.ca.Spec.SecretName, &p.target}, {v1alpha1.GrantSecretName(p.ca), &p.sec}} {
		if p.probe {
			// A Secret not (yet) this object's may be one to adopt: that is for a pass past the caches.
			if *read.into, err = r.Secrets.Get(ctx, p.ca, read.name); err != nil {
				return true, errNotIdle
			}
			continue
		}
		*read.into, err = r.Secrets.Fresh(ctx, p.ca, read.name, adoptable)
		if isConflict(err) {
			r.setReady(p, metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, err.Error()+adoptHint)
			return true, nil
		} else if err != nil {
			return true, err
		}
	}
	return false, nil
}

// keep records the valid grant in status and plans the refresh at next.
func (r *CloudAuthorizationReconciler) keep(ctx context.Context, p *cloudPass, next time.Time) (ctrl.Result, error) {
	held := cloudHeldToken(p.sec)
	p.st.ExpiresAt, p.st.RenewalTime = timePtr(held.expiresAt), timePtr(next)
	if !held.issued.IsZero() {
		p.st.LastRefreshTime = timePtr(held.issued)
	}
	// The grant Secret may be an adopted one: take it over; nothing is written when it is ours
	// already. (The workload's Secret is repaired by publish.)
	ch := secrets.Change{Data: p.sec.Data, Adopt: true}
	if p.probe && !r.Secrets.Unchanged(p.ca, p.sec, v1alpha1.GrantSecretName(p.ca), ch) {
		return ctrl.Result{}, errNotIdle
	}
	if _, _, err := r.Secrets.Write(ctx, p.ca, p.sec, v1alpha1.GrantSecretName(p.ca), ch); err != nil && !apierrors.IsConflict(err) {
		return ctrl.Result{}, err
	}
	return r.authorized(ctx, p, r.requeueAt(next)), nil
}

// ignoreShutdown drops an error caused by the manager shutting down: nothing is retried in this process,
// and logging it as a reconcile error on every SIGTERM is noise.
func ignoreShutdown(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// cloudPass is what one reconcile works with.
type cloudPass struct {
	ca     *v1alpha1.CloudAuthorization
	st     *v1alpha1.CloudAuthorizationStatus
	now    time.Time
	cl     *cloudapi.Client
	creds  cloudapi.Credentials
	credsV string         // resourceVersion of the credentials Secret
	sec    *corev1.Secret // the grant Secret as read past the cache (and as written since); nil when absent
	target *corev1.Secret // the workload's Secret (secretName) as read past the cache; nil when absent
	// targetOK is set once target was read and may be written (not someone else's).
	targetOK bool
	// end ends the pass's registration with the in-flight tracker; nil when none.
	end func()
	// probe marks a pass from the caches that may only look (cloudauthorization_controller_idle.go):
	// where it would act it stops with errNotIdle, or sets notIdle.
	probe, notIdle bool
}

func (p *cloudPass) endInFlight() {
	if p.end != nil {
		p.end()
	}
}

// sync gathers, decides and acts; it only ever returns a Result with a nil error or an error with an
// empty Result.
func (r *CloudAuthorizationReconciler) sync(ctx context.Context, p *cloudPass) (ctrl.Result, error) {
	ca, st := p.ca, p.st
	var err error
	if p.cl, p.creds, p.credsV, err = r.upstream(ctx, ca); err != nil {
		var missing *credentialsError
		switch {
		case isInvalidEndpoint(err):
			r.setReady(p, metav1.ConditionFalse, endpointReason(err), err.Error())
			return ctrl.Result{}, nil
		case errors.As(err, &missing):
			r.setReady(p, metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound, missing.Error())
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err // Kubernetes API errors are transient
	}
	if stop, err := r.readSecrets(ctx, p); stop || err != nil {
		return ctrl.Result{}, err
	}
	p.targetOK = true
	if err := r.migrate(ctx, p); err != nil {
		return ctrl.Result{}, err
	}

	// A marker this process knows ended without rotation is cleared, then the pass decides again.
	for range 2 {
		d := policy.DecideCloud(r.input(p))
		if p.probe && !idleAction(d.Action) {
			return ctrl.Result{}, errNotIdle
		}
		if d.ObserveRequest != "" {
			st.ObservedRefreshRequest = d.ObserveRequest
		}
		if d.ClearRejected {
			st.RejectedCredentialsVersion = ""
		}
		if d.Ready != nil {
			r.setReady(p, d.Ready.Status, d.Ready.Reason, d.Ready.Message)
		}
		switch d.Action {
		case policy.CloudStoreAnswer:
			e, _ := r.Refreshes.Get(ca.UID)
			if e.Outcome == refreshes.Exchanged {
				// A consent's tokens: once stored, the pass goes on as after a callback that stored them.
				if err := r.storeGrant(ctx, p, e); err != nil {
					return ctrl.Result{}, err
				}
				continue
			}
			return r.storeAnswer(ctx, p, e)
		case policy.CloudDropAnswer:
			r.Refreshes.Forget(ca.UID)
			return r.requeueAt(d.At), nil
		case policy.CloudClearMarker:
			if err := r.clearMarker(ctx, p); err != nil {
				return ctrl.Result{}, err
			}
			continue
		case policy.CloudWaitForMarker:
			return r.requeueAt(d.At), nil
		case policy.CloudReauthorize:
			return r.reauthorize(ctx, p, d.Why)
		case policy.CloudAwaitConsent:
			return r.awaitConsent(ctx, p)
		}
		// The grant Secret holds a refresh token: the grant stands, no consent is offered.
		if err := r.withdrawConsent(ctx, p); err != nil {
			return ctrl.Result{}, err
		}
		switch d.Action {
		case policy.CloudWaitForChange:
			return r.authorized(ctx, p, ctrl.Result{}), nil
		case policy.CloudWaitForSlot:
			return r.authorized(ctx, p, r.requeueAt(d.At)), nil
		case policy.CloudKeep:
			return r.keep(ctx, p, d.At)
		default: // policy.CloudRefresh
			res, err := r.refresh(ctx, p)
			if err != nil || !r.holdsGrant(p) {
				return res, err
			}
			return r.authorized(ctx, p, res), nil
		}
	}
	// Two clears in one pass: the Secret keeps changing under us; look again.
	return ctrl.Result{RequeueAfter: time.Second}, nil
}

// input is what policy.DecideCloud decides from.
func (r *CloudAuthorizationReconciler) input(p *cloudPass) policy.CloudInput {
	held := cloudHeldToken(p.sec)
	in := policy.CloudInput{
		Generation: p.ca.Generation, RenewBefore: durationOf(p.ca.Spec.RenewBefore), KeepAlive: durationOf(p.ca.Spec.RefreshTokenKeepAlive),
		Status: p.st, Annotations: p.ca.Annotations, CredentialsVersion: p.credsV,
		HasRefreshToken: p.sec != nil && len(p.sec.Data[KeyRefreshToken]) > 0,
		AccessToken:     held.access, ExpiresAt: held.expiresAt, IssuedAt: held.issued,
		Marker: refreshMarker(p.sec), InFlightBound: r.InFlightBound, Now: p.now, Rand: r.Rand(),
	}
	if in.IssuedAt.IsZero() && p.st.LastRefreshTime != nil {
		in.IssuedAt = p.st.LastRefreshTime.Time
	}
	if e, ok := r.Refreshes.Get(p.ca.UID); ok {
		in.Memory = &e
	}
	return in
}

// holdsGrant reports whether the pass ended with a refresh token in hand (Authorized not False).
func (r *CloudAuthorizationReconciler) holdsGrant(p *cloudPass) bool {
	c := meta.FindStatusCondition(p.st.Conditions, v1alpha1.ConditionAuthorized)
	return c == nil || c.Status != metav1.ConditionFalse
}

// authorized sets Authorized=True for a grant in hand: Granted, or RefreshTokenAtRisk when refreshes
// keep failing past the keep-alive time (issue 8 scenario 10), with a warning event when it becomes at
// risk. While failing and not yet at risk, res is brought forward to the time it would be.
func (r *CloudAuthorizationReconciler) authorized(ctx context.Context, p *cloudPass, res ctrl.Result) ctrl.Result {
	st := p.st
	var last time.Time
	if st.LastRefreshTime != nil {
		last = st.LastRefreshTime.Time
	}
	failing := st.FailedRefreshAttempts > 0 || st.RejectedCredentialsVersion != ""
	atRisk, riskAt, deadline := policy.CloudKeepAlive(last, durationOf(p.ca.Spec.RefreshTokenKeepAlive), failing, p.now)
	c := policy.CloudAuthorizedCondition(atRisk, last, deadline)
	wasAtRisk := false
	if prev := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionAuthorized); prev != nil {
		wasAtRisk = prev.Reason == v1alpha1.ReasonRefreshTokenAtRisk
	}
	r.setAuthorized(p, c.Status, c.Reason, c.Message)
	if atRisk && !wasAtRisk && p.probe {
		p.notIdle = true // the event is the pass past the caches' to emit
	} else if atRisk && !wasAtRisk {
		r.Recorder.Eventf(p.ca, nil, corev1.EventTypeWarning, v1alpha1.ReasonRefreshTokenAtRisk, "RefreshToken", "%s", c.Message)
	}
	if failing && !atRisk && !riskAt.IsZero() {
		if at := r.requeueAt(riskAt); res.RequeueAfter == 0 || at.RequeueAfter < res.RequeueAfter {
			res.RequeueAfter = at.RequeueAfter
		}
	}
	return res
}

func (r *CloudAuthorizationReconciler) setReady(p *cloudPass, status metav1.ConditionStatus, reason, msg string) {
	setCondition(&p.st.Conditions, v1alpha1.ConditionReady, status, reason, msg, p.ca.Generation, p.now)
}

func (r *CloudAuthorizationReconciler) setAuthorized(p *cloudPass, status metav1.ConditionStatus, reason, msg string) {
	setCondition(&p.st.Conditions, v1alpha1.ConditionAuthorized, status, reason, msg, p.ca.Generation, p.now)
}

func recordCloudMetrics(ca *v1alpha1.CloudAuthorization, st *v1alpha1.CloudAuthorizationStatus) {
	metrics.SetCloud(ca.Namespace, ca.Name, cloudState(ca, st))
}
