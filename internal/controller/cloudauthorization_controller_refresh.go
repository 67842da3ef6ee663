package controller

import (
	"context"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/consent"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/refreshes"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/secrets"
)

// refresh spends the refresh token in the Secret for new tokens. The Secret first records that a refresh
// is under way (the marker), and this process remembers the marker and how its request ended; the
// write that stores the answer clears it. A marker found later that this process knows nothing of means
// the answer may have been lost after Verizon rotated the token, and that token is never sent again.
func (r *CloudAuthorizationReconciler) refresh(ctx context.Context, p *cloudPass) (ctrl.Result, error) {
	// Registered before anything is written: once shutdown has begun no refresh starts (issue 8
	// scenario 18), and one that has started is waited for, and stored, before the process exits.
	end, ok := r.InFlight.Begin()
	if !ok {
		return ctrl.Result{}, nil
	}
	p.end = end // after the status write (see Reconcile)
	// From the marker on, the reconcile's cancellation (a manager shutting down) must not cut a write
	// short: a cancelled request may still have been applied, leaving a marker nobody clears, and an
	// answer that arrives has to be stored. The writes and the upstream call carry their own bounds.
	shutdown := ctx
	ctx = context.WithoutCancel(ctx)
	marker := p.now.UTC().Format(time.RFC3339Nano)
	r.Refreshes.Wrote(p.ca.UID, marker)
	marked, _, err := r.Secrets.Write(ctx, p.ca, p.sec, v1alpha1.GrantSecretName(p.ca), secrets.Change{
		Data: p.sec.Data, Adopt: true,
		Annotations: map[string]string{v1alpha1.RefreshStartedAnnotation: marker},
	})
	if err != nil {
		// Nothing was sent; a conflict means the Secret changed and is read again. The write may still
		// have been applied: the marker is ours and known not to have rotated anything.
		r.Refreshes.Ended(p.ca.UID, marker, refreshes.NotRotated)
		return ctrl.Result{}, err
	}
	p.sec = marked
	if shutdown.Err() != nil {
		// Shutting down: do not start sending; take the marker back so the next manager refreshes freely.
		r.Refreshes.Ended(p.ca.UID, marker, refreshes.NotRotated)
		return ctrl.Result{}, r.clearMarker(ctx, p)
	}
	tokens, err := p.cl.Refresh(ctx, p.creds, string(marked.Data[KeyRefreshToken]))
	received := r.Clock.Now()
	if err != nil && tokens.RefreshToken == "" {
		return r.refreshFailed(ctx, p, err)
	}
	if tokens.RefreshToken == "" {
		tokens.RefreshToken = string(marked.Data[KeyRefreshToken]) // not rotated: the old one lives on
	}
	expiresAt := time.Time{}
	if err == nil {
		expiresAt = renewal.Expiry(received, tokens.ExpiresIn)
	} else {
		// Issue 8 scenario 7: a 2xx with an unusable access token but a rotated refresh token. The new
		// refresh token is stored (the old one is spent); the held access token stays; the refresh
		// counts as failed and is retried with the new token after a backoff.
		log.FromContext(ctx).Info("Refresh answered without a usable access token; storing its refresh token", "error", err.Error())
		policy.RecordFailure(&p.st.RefreshStatus, p.now)
	}
	r.Refreshes.Answered(p.ca.UID, marker, tokens, received, expiresAt)
	e, _ := r.Refreshes.Get(p.ca.UID)
	return r.storeAnswerPersisting(ctx, p, e)
}

// storeAnswer writes refreshed tokens into the Secret and clears the refresh marker in one write. Until
// that write lands the tokens stay in memory and every pass retries it first.
func (r *CloudAuthorizationReconciler) storeAnswer(ctx context.Context, p *cloudPass, e refreshes.Entry) (ctrl.Result, error) {
	partial := e.Tokens.AccessToken == ""
	data := maps.Clone(p.sec.Data)
	if !partial {
		data = cloudTokenData(e.Tokens, e.ExpiresAt)
	} else {
		data[KeyRefreshToken] = []byte(e.Tokens.RefreshToken)
	}
	stored, _, err := r.Secrets.Write(ctx, p.ca, p.sec, v1alpha1.GrantSecretName(p.ca), secrets.Change{
		Data: data, Adopt: true,
		Annotations: map[string]string{
			v1alpha1.RefreshStartedAnnotation: "",
			// For a partial answer too: the refresh token's age is what the keep-alive counts.
			v1alpha1.RefreshedAtAnnotation: e.Issued.UTC().Format(time.RFC3339Nano),
		},
	})
	if err != nil {
		// Kept in memory; a conflict re-reads the Secret on the next pass, which retries at once.
		return ctrl.Result{}, err
	}
	r.Refreshes.ForgetMarker(p.ca.UID, e.Marker)
	// Stored: this pass's publish may hand the new access token to the workload's Secret at once,
	// instead of a pass of its own (three more reads past the caches per refresh).
	p.sec = stored
	st := p.st
	consent.Clear(st)
	st.RejectedCredentialsVersion = ""
	r.setAuthorized(p, metav1.ConditionTrue, v1alpha1.ReasonGranted, "The operator holds a refresh token for this app")
	if partial {
		// The rotated refresh token is safe; the access token is fetched again after a backoff.
		slot := p.now.Add(r.Backoff.RetryDelay(st.FailedRefreshAttempts, r.Rand(), 0, 0))
		st.RenewalTime = timePtr(slot)
		if held := cloudHeldToken(p.sec); !held.valid(p.now) {
			r.setReady(p, metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable, "The refresh answered without a usable access token; the new refresh token is stored, next try at "+slot.UTC().Format(time.RFC3339))
		}
		r.Recorder.Eventf(p.ca, nil, corev1.EventTypeWarning, v1alpha1.EventRefreshFailed, "RefreshToken",
			"The refresh answered without a usable access token; its rotated refresh token was stored in Secret %s, retrying", p.ca.Spec.SecretName)
		return r.requeueAt(slot), nil
	}
	r.warnLifetime(p, e)
	r.Recorder.Eventf(p.ca, nil, corev1.EventTypeNormal, v1alpha1.EventRefreshed, "RefreshToken",
		"Refreshed the tokens (the rotated refresh token in Secret %s); the access token in Secret %s is valid until %s",
		v1alpha1.GrantSecretName(p.ca), p.ca.Spec.SecretName, e.ExpiresAt.UTC().Format(time.RFC3339))
	log.FromContext(ctx).Info("Tokens refreshed", "secret", klog.KRef(p.ca.Namespace, p.ca.Spec.SecretName), "expiresAt", e.ExpiresAt.UTC())

	next := policy.CloudNextRefresh(e.Issued, e.ExpiresAt, durationOf(p.ca.Spec.RenewBefore), durationOf(p.ca.Spec.RefreshTokenKeepAlive), r.Rand())
	st.ExpiresAt, st.RenewalTime, st.LastRefreshTime = timePtr(e.ExpiresAt), timePtr(next), timePtr(e.Issued)
	st.FailedRefreshAttempts, st.LastFailureTime = 0, nil
	r.setReady(p, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, policy.CloudValidUntil(e.ExpiresAt))
	return r.requeueAt(next), nil
}

// storeGrant writes a code exchange's tokens the callback left in memory because the Secret refused
// them (issue 8: an answer that must be persisted is stored). Until the write lands, the status says
// so and neither Authorized nor Ready is True: the grant lives only in this process.
func (r *CloudAuthorizationReconciler) storeGrant(ctx context.Context, p *cloudPass, e refreshes.Entry) error {
	name := p.ca.Spec.SecretName
	written, err := writeGrant(ctx, &r.Deps, p.ca, p.sec, e.Tokens, e.Issued, e.ExpiresAt)
	if err != nil {
		msg := "Consent received and its code exchanged, but the tokens could not be written to Secret " + v1alpha1.GrantSecretName(p.ca) +
			" (" + describeStoreFailure(err) + "); the operator keeps them in memory and retries"
		r.setAuthorized(p, metav1.ConditionFalse, v1alpha1.ReasonGrantNotStored, msg)
		r.setReady(p, metav1.ConditionFalse, v1alpha1.ReasonGrantNotStored, msg)
		// The grant is in hand: no consent is asked for meanwhile. A link a pass issued while the callback
		// was still retrying its own write (the spent state had cleared the old one) goes too.
		consent.Clear(p.st)
		return err
	}
	p.sec = written
	r.Refreshes.Stored(p.ca.UID, e)
	st := p.st
	st.FailedRefreshAttempts, st.LastFailureTime, st.RejectedCredentialsVersion = 0, nil, ""
	r.warnLifetime(p, e)
	if e.ExpiresAt.IsZero() {
		r.Recorder.Eventf(p.ca, nil, corev1.EventTypeNormal, v1alpha1.EventAuthorized, "Authorize",
			"Consent received; the refresh token was written to Secret %s once it could be, an access token follows with the first refresh", name)
	} else {
		r.Recorder.Eventf(p.ca, nil, corev1.EventTypeNormal, v1alpha1.EventAuthorized, "Authorize",
			"Consent received; tokens written to Secret %s once it could be, the access token is valid until %s", name, e.ExpiresAt.UTC().Format(time.RFC3339))
	}
	log.FromContext(ctx).Info("Consent received; the tokens the callback could not store are written", "secret", klog.KRef(p.ca.Namespace, name))
	return nil
}

// warnLifetime says when the stored lifetime is not the one Verizon announced (issue 8 scenarios 7, 18).
func (r *CloudAuthorizationReconciler) warnLifetime(p *cloudPass, e refreshes.Entry) {
	if e.Tokens.LifetimeAssumed {
		r.Recorder.Eventf(p.ca, nil, corev1.EventTypeWarning, v1alpha1.EventLifetimeAssumed, "RefreshToken",
			"The token answer had no expires_in; the access token is assumed to live %s", e.Tokens.ExpiresIn)
	}
	if e.Tokens.LifetimeCapped {
		r.Recorder.Eventf(p.ca, nil, corev1.EventTypeWarning, v1alpha1.EventLifetimeCapped, "RefreshToken",
			"The token answer announced a lifetime beyond %s; it was capped", e.Tokens.ExpiresIn)
	}
}

// refreshFailed sorts a failed refresh with policy.CloudRefreshFailed. Unless the request may have
// reached Verizon unanswered, the refresh token is still good (Verizon answered without rotating it),
// so the marker is cleared; if the clear fails, this process remembers it may clear it later.
func (r *CloudAuthorizationReconciler) refreshFailed(ctx context.Context, p *cloudPass, err error) (ctrl.Result, error) {
	st := p.st
	marker := p.sec.Annotations[v1alpha1.RefreshStartedAnnotation]
	held := cloudHeldToken(p.sec)
	var heldExpiry time.Time
	if held.valid(p.now) {
		heldExpiry = held.expiresAt
	}
	// From when the answer arrived, not when the pass began: Retry-After counts from the answer, and the
	// pass may have spent seconds before the call (the refresh marker's write under slow API writes:
	// the chaos suite saw a retry 238 ms inside a 2 s Retry-After).
	answered := r.Clock.Now()
	f := policy.CloudRefreshFailed(err, st.FailedRefreshAttempts+1, r.Backoff, r.Rand(), heldExpiry, answered)
	r.Refreshes.Ended(p.ca.UID, marker, f.Outcome)
	if f.Action == policy.CloudFailReauthorize {
		return r.reauthorize(ctx, p, f.Why)
	}
	// The failure is recorded first: status is written even when the marker clear below fails, and the
	// next pass then clears the marker (this process remembers it) and waits for the retry slot.
	policy.RecordFailure(&st.RefreshStatus, p.now)
	msg := err.Error() // upstream errors carry status and error codes only, never bodies or tokens
	res := ctrl.Result{RequeueAfter: f.Retry.Delay}
	if f.Action == policy.CloudFailStop {
		st.RejectedCredentialsVersion, st.RenewalTime = p.credsV, nil
		r.setReady(p, f.Ready.Status, f.Ready.Reason, f.Ready.Message)
		r.Recorder.Eventf(p.ca, nil, corev1.EventTypeWarning, f.Ready.Reason, "RefreshToken", "%s", msg)
		log.FromContext(ctx).Info("Upstream refused the app's credentials; waiting for a change", "error", msg)
		res = ctrl.Result{}
	} else {
		st.RenewalTime = timePtr(f.Retry.At)
		ready := metav1.ConditionFalse
		if f.Retry.Ready {
			ready = metav1.ConditionTrue
		}
		r.setReady(p, ready, f.Retry.Reason, f.Retry.Message)
		if st.FailedRefreshAttempts == 1 {
			r.Recorder.Eventf(p.ca, nil, corev1.EventTypeWarning, v1alpha1.EventRefreshFailed, "RefreshToken", "%s; retrying with backoff", msg)
		}
		log.FromContext(ctx).Info("Refresh failed; backing off", "error", msg, "attempt", st.FailedRefreshAttempts, "retryIn", f.Retry.Delay)
	}
	if werr := r.clearMarker(ctx, p); werr != nil {
		return ctrl.Result{}, werr
	}
	return res, nil
}

// clearMarker removes the refresh marker from a Secret whose refresh token was not sent, or was refused
// without being rotated; once it is gone, so is the process's memory of it.
func (r *CloudAuthorizationReconciler) clearMarker(ctx context.Context, p *cloudPass) error {
	marker := p.sec.Annotations[v1alpha1.RefreshStartedAnnotation]
	written, _, err := r.Secrets.Write(ctx, p.ca, p.sec, v1alpha1.GrantSecretName(p.ca), secrets.Change{
		Data: p.sec.Data, Adopt: true,
		Annotations: map[string]string{v1alpha1.RefreshStartedAnnotation: ""},
	})
	if err != nil {
		return err
	}
	p.sec = written
	r.Refreshes.ForgetMarker(p.ca.UID, marker)
	return nil
}

// reauthorize drops the refresh token that can no longer be used (keeping the access token, which may
// work until it expires) and asks for consent again.
func (r *CloudAuthorizationReconciler) reauthorize(ctx context.Context, p *cloudPass, why string) (ctrl.Result, error) {
	data := maps.Clone(p.sec.Data)
	delete(data, KeyRefreshToken)
	written, _, err := r.Secrets.Write(ctx, p.ca, p.sec, v1alpha1.GrantSecretName(p.ca), secrets.Change{
		Data: data, Adopt: true,
		Annotations: map[string]string{v1alpha1.RefreshStartedAnnotation: ""},
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	p.sec = written
	r.Refreshes.Forget(p.ca.UID)
	msg := why + ". Open the consent link in Secret " + v1alpha1.ConsentSecretName(p.ca) + " to authorize again, or put a new refresh token under refresh_token in Secret " + v1alpha1.GrantSecretName(p.ca)
	p.st.FailedRefreshAttempts, p.st.RenewalTime = 0, nil
	r.setAuthorized(p, metav1.ConditionFalse, v1alpha1.ReasonReauthorizationRequired, msg)
	r.Recorder.Eventf(p.ca, nil, corev1.EventTypeWarning, v1alpha1.ReasonReauthorizationRequired, "RefreshToken", "%s", why)
	log.FromContext(ctx).Info("Authorization lost; waiting for consent", "why", why)
	return r.awaitConsent(ctx, p)
}

// awaitConsent keeps a live consent link in the consent Secret while there is no refresh token to use.
func (r *CloudAuthorizationReconciler) awaitConsent(ctx context.Context, p *cloudPass) (ctrl.Result, error) {
	st := p.st
	// AuthorizationPending is restated each pass: it may still say a code was being exchanged by a
	// callback that never finished (a process gone mid-exchange).
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionAuthorized); c == nil || c.Status != metav1.ConditionFalse ||
		!waitsForPerson(c.Reason) || c.Reason == v1alpha1.ReasonAuthorizationPending {
		r.setAuthorized(p, metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending,
			"Waiting for a person to consent with the link in Secret "+v1alpha1.ConsentSecretName(p.ca)+
				" (kubectl thingspace consent "+p.ca.Name+"), or for a refresh_token in Secret "+v1alpha1.GrantSecretName(p.ca))
	}
	authorized := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionAuthorized)
	readyReason := v1alpha1.ReasonPending
	if authorized.Reason != v1alpha1.ReasonAuthorizationPending {
		readyReason = authorized.Reason
	}
	if held := cloudHeldToken(p.sec); held.access {
		st.ExpiresAt = timePtr(held.expiresAt)
	}
	r.setReady(p, metav1.ConditionFalse, readyReason, "No refresh token: "+authorized.Message)
	st.RenewalTime = nil
	if err := r.offerConsent(ctx, p); err != nil {
		if msg, ok := consentConflict(err); ok {
			r.setReady(p, metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, msg)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	return r.requeueAt(st.ConsentExpiresAt.Time), nil
}

// waitsForPerson reports whether an Authorized=False reason already tells the person what to do.
func waitsForPerson(reason string) bool {
	switch reason {
	case v1alpha1.ReasonAuthorizationPending, v1alpha1.ReasonAccessDenied, v1alpha1.ReasonReauthorizationRequired, v1alpha1.ReasonCodeExchangeFailed:
		return true
	}
	return false
}
