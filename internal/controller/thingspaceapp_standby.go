package controller

import (
	"context"
	"errors"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
)

// The standby key set (issue 11 §1): gathering the second key set, choosing the active one, the
// handover step and its failures, and the plan recorded after every publish. The decisions are
// policy.PlanHandover and policy.CheckHandover.

// keySet is one key set of an app as gathered: which one, its broker key, its credentials and the
// resourceVersion of the Secret they came from.
type keySet struct {
	name    string // v1alpha1.KeySetPrimary or KeySetStandby
	key     tokenbroker.Key
	creds   thingspace.Credentials
	version string
}

// standbyInfo is what was gathered about the standby key set.
type standbyInfo struct {
	state   policy.Standby
	problem string  // why it is missing (names the Secret, never a value)
	set     *keySet // nil unless its Secret was read
}

// gaveUpHandovers remembers, per object, the expiry of a token for which no handover is possible (the
// other key set's token outlived it by too little), so passes until that expiry do not ask again. It is
// memory only: after a restart the first pass asks once more and finds the same.
type gaveUpHandovers struct{ m sync.Map }

func (g *gaveUpHandovers) get(who types.NamespacedName) time.Time {
	if v, ok := g.m.Load(who); ok {
		return v.(time.Time)
	}
	return time.Time{}
}

// forget drops who's entry (the object is gone).
func (g *gaveUpHandovers) forget(who types.NamespacedName) { g.m.Delete(who) }

// gatherStandby reads the standby credentials Secret (past the cache, like the primary's) and says
// whether a recorded refusal still stands. Only errors other than a missing Secret or key are returned.
func (r *ThingSpaceAppReconciler) gatherStandby(ctx context.Context, s *appState) (standbyInfo, error) {
	app, st := s.app, s.st
	ref := app.Spec.StandbyCredentialsSecretRef
	if ref == nil || ref.Name == "" {
		return standbyInfo{state: policy.StandbyNone}, nil
	}
	cs, err := readCredentials(ctx, r.APIReader, app.Namespace, ref.Name, credKey, credSecret)
	var missing *credentialsError
	if errors.As(err, &missing) {
		return standbyInfo{state: policy.StandbyMissing, problem: "standby " + missing.Error()}, nil
	} else if err != nil {
		return standbyInfo{}, err
	}
	creds := thingspace.Credentials{Key: cs.values[credKey], Secret: cs.values[credSecret]}
	info := standbyInfo{state: policy.StandbyReady, set: &keySet{name: v1alpha1.KeySetStandby,
		key: tokenbroker.NewKey(endpointOf(app), creds), creds: creds, version: cs.resourceVersion}}
	switch {
	case policy.StandbyStillRejected(st.RejectedStandbyCredentialsVersion, cs.resourceVersion, st.Conditions, app.Generation):
		info.state = policy.StandbyRejected
	case st.RejectedStandbyCredentialsVersion != "":
		st.RejectedStandbyCredentialsVersion = "" // the Secret or the spec changed: try it again
	}
	return info, nil
}

// chooseActive picks the key set whose token the Secret holds (its provenance, while unexpired), else
// the one status names while usable, else the primary. A token either key set issued is trusted; one
// neither did is replaced (policy.TrustHeld).
func chooseActive(s *appState, primary keySet, sb standbyInfo) (active keySet, other *keySet) {
	sec := secretToken(s.owned)
	live := sec.AccessToken != "" && s.now.Before(sec.ExpiresAt)
	switch {
	case sb.set != nil && live && sec.Provenance == sb.set.key.Provenance(sec.AccessToken):
		return *sb.set, &primary
	case live && sec.Provenance == primary.key.Provenance(sec.AccessToken):
	case s.st.ActiveKeySet == v1alpha1.KeySetStandby && sb.state == policy.StandbyReady:
		return *sb.set, &primary
	}
	return primary, sb.set
}

// handoverInput is the policy's view of the published token tok.
func (s *appState) handoverInput(tok policy.AppToken, gaveUp time.Time) policy.HandoverInput {
	in := policy.HandoverInput{Standby: s.sb.state, Problem: s.sb.problem, Active: s.active.name, Held: tok,
		Status: s.st, Generation: s.app.Generation, GaveUp: gaveUp, Now: s.now}
	in.HandoverBefore = handoverBefore(s.app)
	return in
}

// usableOther reports whether a handover can fetch with the other key set: the standby is usable
// (or is the active one, and the other is the primary).
func (s *appState) usableOther() bool {
	return s.other != nil && s.sb.state == policy.StandbyReady
}

// handover runs the handover when one is due (d is AppWait) or a refresh was requested (d is the
// rotation it replaces: a handover revokes nothing). done is false when the pass goes on with d.
func (r *ThingSpaceAppReconciler) handover(ctx context.Context, s *appState, iss tokenbroker.Issuer, d policy.AppDecision) (ctrl.Result, bool, error) {
	manual := d.Step == policy.AppRotate && d.Why == policy.WhyRefreshRequested
	if !s.usableOther() || (d.Step != policy.AppWait && !manual) || !s.in.Held.ValidAt(s.now) {
		return ctrl.Result{}, false, nil
	}
	if !manual && !policy.PlanHandover(s.handoverInput(s.in.Held, r.gaveUp.get(s.who))).Due {
		return ctrl.Result{}, false, nil
	}
	other, st := *s.other, s.st
	// The other key's broker entry: every holder of that key in this process shares the one token.
	res, err := r.Broker.Fetch(ctx, other.key, s.who, iss, other.creds, s.app.Spec.Scope, "")
	if until, ok := tokenbroker.ThrottledUntil(err); ok {
		// Nothing sent: the other key set's key is inside a Retry-After. Try the handover then.
		at := policy.AppThrottled(s.in.Held, false, until, s.now).At
		st.RenewalTime, st.NextHandoverTime = timePtr(at), nil
		if at.Before(s.in.Held.ExpiresAt) {
			st.NextHandoverTime = timePtr(at)
		}
		r.setOverlap(s, metav1.ConditionFalse, v1alpha1.ReasonStandbyUnavailable, err.Error()+"; the handover is tried again then")
		return r.requeueAt(until), true, nil
	}
	if err != nil {
		res, err := r.handoverFailed(ctx, s, other, err)
		return res, true, err
	}
	chk := policy.CheckHandover(handoverBefore(s.app), s.in.Held, appToken(res.Token), other.name)
	if !chk.Publish {
		metrics.AppHandovers.WithLabelValues("deferred").Inc()
		if manual {
			return ctrl.Result{}, false, nil // the refresh is served by the rotation it asked for
		}
		next := chk.RetryAt
		if next.IsZero() {
			r.gaveUp.m.Store(s.who, s.in.Held.ExpiresAt)
			next, st.NextHandoverTime = s.in.Held.ExpiresAt, nil
		} else {
			st.NextHandoverTime = timePtr(next)
		}
		st.RenewalTime = timePtr(next)
		r.setOverlap(s, metav1.ConditionFalse, v1alpha1.ReasonStandbyUnavailable, chk.Message)
		log.FromContext(ctx).Info("No handover yet", "why", chk.Message)
		return r.requeueAt(next), true, nil
	}
	if manual {
		st.ObservedRefreshRequest = d.Refresh
	}
	metrics.AppHandovers.WithLabelValues("handed_over").Inc()
	s.handedOver = true
	prev := s.active
	s.active, s.other, s.key = other, &prev, other.key
	r.Broker.Subscribe(s.active.key, s.who)
	r.Broker.Seed(s.active.key, res.Token)
	out, err := r.refreshed(ctx, s, res, false)
	return out, true, err
}

// handoverFailed records a failed handover fetch. A refused standby key set is recorded and never
// retried until its Secret or the spec changes; a refused primary is the primary's refusal
// (refreshFailed); a transient failure backs off until the published token's expiry. None of them
// touches the published token or Ready.
func (r *ThingSpaceAppReconciler) handoverFailed(ctx context.Context, s *appState, other keySet, err error) (ctrl.Result, error) {
	st, held := s.st, s.in.Held
	_, terminal := policy.AppTerminal(err)
	switch {
	case terminal && other.name == v1alpha1.KeySetStandby:
		metrics.AppHandovers.WithLabelValues("rejected").Inc()
		st.RejectedStandbyCredentialsVersion = other.version
		st.NextHandoverTime, st.RenewalTime = nil, timePtr(held.ExpiresAt)
		r.setOverlap(s, metav1.ConditionFalse, v1alpha1.ReasonStandbyCredentialsRejected,
			err.Error()+"; nothing is sent with the standby key set until its Secret or the spec changes; the token is renewed at its expiry with the Primary key set")
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, v1alpha1.ReasonStandbyCredentialsRejected, "RequestToken", "%s", err.Error())
		log.FromContext(ctx).Info("Upstream refused the standby key set; waiting for a change", "error", err.Error())
		return r.requeueAt(held.ExpiresAt), nil
	case terminal:
		metrics.AppHandovers.WithLabelValues("rejected").Inc()
		r.setOverlap(s, metav1.ConditionFalse, v1alpha1.ReasonStandbyUnavailable, "The upstream refused the Primary key set: "+err.Error())
		return r.refreshFailed(ctx, s, other.version, err, false)
	}
	metrics.AppHandovers.WithLabelValues("failed").Inc()
	failures := policy.RecordFailure(&st.RefreshStatus, s.now)
	at, msg := policy.HandoverRetry(r.Backoff, failures, r.Rand(), err, held, other.name, s.now)
	st.RenewalTime = timePtr(at)
	st.NextHandoverTime = nil
	if at.Before(held.ExpiresAt) {
		st.NextHandoverTime = timePtr(at)
	}
	r.setOverlap(s, metav1.ConditionFalse, v1alpha1.ReasonStandbyUnavailable, msg)
	if failures == 1 {
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, v1alpha1.EventRefreshFailed, "RequestToken",
			"Handover to the %s key set failed: %s; retrying with backoff", other.name, err.Error())
	}
	log.FromContext(ctx).Info("Handover failed; backing off", "error", err.Error(), "attempt", failures, "retryAt", at.UTC())
	return r.requeueAt(at), nil
}

// planStandby records, after tok was published, which key set is active, the next handover and the
// Overlap condition, and returns the next planned upstream call (next, or the handover if earlier).
func (r *ThingSpaceAppReconciler) planStandby(ctx context.Context, s *appState, tok tokenbroker.Token, next time.Time) time.Time {
	st := s.st
	if s.sb.state == policy.StandbyNone {
		st.ActiveKeySet, st.NextHandoverTime, st.RejectedStandbyCredentialsVersion = "", nil, ""
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionOverlap)
		return next
	}
	st.ActiveKeySet = s.active.name
	if s.handedOver {
		r.Recorder.Eventf(s.obj, nil, corev1.EventTypeNormal, v1alpha1.EventHandedOver, "WriteSecret",
			"Published the %s key set's token in Secret %s, valid until %s; the replaced token stays valid until it expires",
			s.active.name, s.app.Spec.SecretName, tok.ExpiresAt.UTC().Format(time.RFC3339))
		log.FromContext(ctx).Info("Handed over", "secret", klog.KRef(s.app.Namespace, s.app.Spec.SecretName), "keySet", s.active.name, "expiresAt", tok.ExpiresAt.UTC())
	}
	p := policy.PlanHandover(s.handoverInput(appToken(tok), r.gaveUp.get(s.who)))
	st.NextHandoverTime = nil
	if !p.At.IsZero() {
		st.NextHandoverTime = timePtr(p.At)
		if p.At.Before(next) {
			next = p.At
		}
	}
	if !p.Keep {
		r.setOverlap(s, p.Overlap, p.Reason, p.Message)
	}
	return next
}

// handoverBefore is spec.handoverBefore (zero: unset).
func handoverBefore(app *v1alpha1.ThingSpaceApp) time.Duration {
	if app.Spec.HandoverBefore == nil {
		return 0
	}
	return app.Spec.HandoverBefore.Duration
}

func (r *ThingSpaceAppReconciler) setOverlap(s *appState, status metav1.ConditionStatus, reason, msg string) {
	setCondition(&s.st.Conditions, v1alpha1.ConditionOverlap, status, reason, msg, s.app.Generation, s.now)
}
