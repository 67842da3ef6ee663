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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/memo"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/secrets"
)

// kindClusterApp names the cluster-scoped kind in conditions and events.
const kindClusterApp = "ClusterThingSpaceApp"

// reconcileConsumer keeps the Secret of a ThingSpaceApp with clusterAppRef a copy of its
// ClusterThingSpaceApp's token, while that one allows the namespace. It never calls the upstream: the
// ClusterThingSpaceApp's one token serves every consumer.
func (r *ThingSpaceAppReconciler) reconcileConsumer(ctx context.Context, app *v1alpha1.ThingSpaceApp) (ctrl.Result, error) {
	// A consumer holds no token of the broker's: whatever it held with credentials of its own (before a
	// switch to clusterAppRef) is not its any more.
	r.Broker.Unsubscribe(client.ObjectKeyFromObject(app))
	if !app.DeletionTimestamp.IsZero() {
		// revokeOnDelete is refused with clusterAppRef: a finalizer left from before goes, unrevoked.
		if controllerutil.ContainsFinalizer(app, v1alpha1.RevokeFinalizer) {
			return ctrl.Result{}, releaseFinalizer(ctx, &r.Deps, app, v1alpha1.RevokeFinalizer)
		}
		return ctrl.Result{}, nil
	}
	if err := syncFinalizer(ctx, &r.Deps, app, v1alpha1.RevokeFinalizer, false); err != nil {
		return ctrl.Result{}, err
	}
	cached := app.Status.DeepCopy()
	known := r.statuses.Get(client.ObjectKeyFromObject(app), app.UID, app.Status)
	st := known.DeepCopy()
	now := r.Clock.Now()
	res, syncErr := r.consume(ctx, app, st, now)
	policy.RecordProgress(&st.Conditions, &st.ObservedGeneration, app.Generation, now)
	if err := r.recordApp(ctx, app, *cached)(st); err != nil {
		return ctrl.Result{}, err
	}
	r.recordMetrics(app, st)
	if syncErr != nil {
		return ctrl.Result{}, syncErr
	}
	return res, nil
}

// recordApp stores a ThingSpaceApp's status (memo.Record), cached being the status as read.
func (r *ThingSpaceAppReconciler) recordApp(ctx context.Context, app *v1alpha1.ThingSpaceApp, cached v1alpha1.ThingSpaceAppStatus) func(*v1alpha1.ThingSpaceAppStatus) error {
	return func(st *v1alpha1.ThingSpaceAppStatus) error {
		return memo.Record(ctx, r.Client, r.statuses, app, cached, *st, func(s v1alpha1.ThingSpaceAppStatus) client.Object {
			c := app.DeepCopy()
			c.Status = s
			return c
		})
	}
}

// consume gathers (the consumer's Secret, the ClusterThingSpaceApp, its admission and its Secret),
// decides (policy.DecideConsumer) and acts on the consumer's Secret.
func (r *ThingSpaceAppReconciler) consume(ctx context.Context, app *v1alpha1.ThingSpaceApp, st *v1alpha1.ThingSpaceAppStatus, now time.Time) (ctrl.Result, error) {
	setReady := func(status metav1.ConditionStatus, reason, msg string) {
		setCondition(&st.Conditions, v1alpha1.ConditionReady, status, reason, msg, app.Generation, now)
	}
	owned, err := r.Secrets.Get(ctx, app, app.Spec.SecretName)
	if conflict, ok := errors.AsType[*secrets.ConflictError](err); ok {
		setReady(metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, conflict.Error())
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	in, src, err := r.gatherSource(ctx, app)
	if err != nil {
		return ctrl.Result{}, err
	}
	in.Held, in.Now = appToken(heldToken(owned)), now
	d := policy.DecideConsumer(in.ConsumerInput)

	switch d.Step {
	case policy.ConsumerDelete:
		if owned != nil {
			if err := r.Secrets.Delete(ctx, app, owned); err != nil {
				return ctrl.Result{}, err
			}
			log.FromContext(ctx).Info("Namespace not allowed: Secret deleted", "clusterApp", in.Name, "secret", app.Spec.SecretName)
		}
	case policy.ConsumerPublish:
		tok := heldToken(src)
		_, written, err := r.Secrets.Write(ctx, app, owned, app.Spec.SecretName, secrets.Change{
			Template: app.Spec.SecretTemplate, Data: tokenData(tok),
			// Who issued it, as the ClusterThingSpaceApp's Secret says: a later switch to credentials
			// of this namespace trusts the token only if they are the very same (policy.TrustHeld).
			Annotations: map[string]string{v1alpha1.ProvenanceAnnotation: src.Annotations[v1alpha1.ProvenanceAnnotation]},
		})
		if isConflict(err) {
			setReady(metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, err.Error())
			return ctrl.Result{}, nil
		} else if err != nil {
			return ctrl.Result{}, err
		}
		if written && tok.AccessToken != in.Held.AccessToken {
			r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, v1alpha1.EventRefreshed, "WriteSecret",
				"Copied the token of %s %s to Secret %s, valid until %s", kindClusterApp, in.Name, app.Spec.SecretName, tok.ExpiresAt.UTC().Format(time.RFC3339))
		}
	}
	st.ExpiresAt, st.RenewalTime, st.LastRefreshTime = nil, nil, nil
	if d.Token.AccessToken != "" {
		st.ExpiresAt = timePtr(d.Token.ExpiresAt)
	}
	if d.Step == policy.ConsumerPublish && in.SourceIssued != nil {
		st.LastRefreshTime = in.SourceIssued
	}
	setReady(d.Ready, d.Reason, d.Message)
	if d.Next.IsZero() {
		return ctrl.Result{}, nil
	}
	return r.requeueAt(d.Next), nil
}

// consumerInput is what a consumer's decision is made from, besides its own Secret.
type consumerInput struct {
	policy.ConsumerInput
	// SourceIssued is the ClusterThingSpaceApp's status.lastRefreshTime, mirrored when its token is.
	SourceIssued *metav1.Time
}

// gatherSource reads the consumer's ClusterThingSpaceApp (cache), decides its admission on the
// namespace's labels and reads its Secret (the managed Secrets' cache). src is that Secret, nil when
// it is absent or not the ClusterThingSpaceApp's.
func (r *ThingSpaceAppReconciler) gatherSource(ctx context.Context, app *v1alpha1.ThingSpaceApp) (consumerInput, *corev1.Secret, error) {
	in := consumerInput{ConsumerInput: policy.ConsumerInput{Kind: kindClusterApp, Name: app.Spec.ClusterAppRef.Name}}
	c := &v1alpha1.ClusterThingSpaceApp{}
	if err := r.Get(ctx, client.ObjectKey{Name: in.Name}, c); apierrors.IsNotFound(err) {
		// Nothing to refuse on: the last token copied stays until it expires.
		in.Admission = policy.Admission{Allowed: true}
		in.OtherShard = r.otherShard(ctx, kindClusterApp, client.ObjectKey{Name: in.Name}, c)
		return in, nil, nil
	} else if err != nil {
		return in, nil, err
	}
	in.Found = true
	adm, err := r.admit(ctx, kindClusterApp, c.Name, c.Spec.AllowedNamespaces, app.Namespace)
	if err != nil || !adm.Allowed || r.ClusterNamespace == "" {
		in.Admission = adm
		return in, nil, err
	}
	in.Admission = adm
	src, err := r.Secrets.Get(ctx, c, c.Spec.SecretName)
	if isConflict(err) {
		return in, nil, nil // not the ClusterThingSpaceApp's: nothing to copy (its own status says why)
	} else if err != nil {
		return in, nil, err
	}
	in.Source = appToken(heldToken(src))
	if c.Status.ExpiresAt != nil {
		in.SourceEnds = c.Status.ExpiresAt.Time
	}
	in.SourceIssued = c.Status.LastRefreshTime
	if ready := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady); ready != nil {
		in.SourceReady = ready.Status == metav1.ConditionTrue && ready.ObservedGeneration == c.Generation
	}
	return in, src, nil
}
