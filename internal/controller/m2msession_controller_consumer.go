package controller

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/memo"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/policy"
)

// consumedKeys are the data keys a consumer copies from its ClusterM2MSession's Secret: both headers'
// values, written together, so a workload never pairs a session with another session's app token.
var consumedKeys = []string{KeySessionToken, KeyAccessToken, KeyAccessTokenExpiresAt}

// consume reconciles an M2MSession that names a ClusterM2MSession: no login, keep-alive or logout of
// its own (the cluster session's one session serves every consumer). It admits the namespace, copies the
// cluster session's Secret into the consumer's in one write, and mirrors the source's Ready. Everything
// it reads is watched (the ClusterM2MSession, its Secret, the namespace's labels), so it never requeues.
func (r *M2MSessionReconciler) consume(ctx context.Context, sess *v1alpha1.M2MSession) (ctrl.Result, error) {
	if !sess.DeletionTimestamp.IsZero() {
		// A finalizer left from when it had a session of its own: there is nothing of it to log out now.
		// Its Secret goes with it (owner reference).
		return ctrl.Result{}, releaseFinalizer(ctx, &r.Deps, sess, v1alpha1.LogoutFinalizer)
	}
	if err := syncFinalizer(ctx, &r.Deps, sess, v1alpha1.LogoutFinalizer, false); err != nil {
		return ctrl.Result{}, err
	}
	now := r.Clock.Now()
	facts, src, data, err := r.gatherConsumer(ctx, sess)
	if err != nil {
		return ctrl.Result{}, err
	}
	d := policy.DecideSessionConsumer(facts)
	owned, err := r.Secrets.Get(ctx, sess, sess.Spec.SecretName)
	if err != nil && !isConflict(err) {
		return ctrl.Result{}, err
	}
	if err == nil {
		err = r.actConsumer(ctx, sess, d.Step, owned, data)
	}
	if isConflict(err) {
		d = policy.SessionConsumerDecision{Step: policy.ConsumerKeep, Ready: metav1.ConditionFalse, Reason: v1alpha1.ReasonSecretConflict, Message: err.Error()}
	} else if err != nil {
		return ctrl.Result{}, err
	}
	// A consumer's status is the mirror only: what it recorded of a session of its own goes. It starts
	// from the status this process last decided (memo): the pass woken by the consumer's own Secret write
	// may read the object before the cache shows the status that pass wrote, and would write it again.
	cached := sess.Status
	known := r.statuses.Get(client.ObjectKeyFromObject(sess), sess.UID, cached)
	st := v1alpha1.M2MSessionStatus{Conditions: slices.Clone(known.Conditions), ObservedGeneration: known.ObservedGeneration}
	if d.Step == policy.ConsumerPublish {
		st.LastLoginTime = src.Status.LastLoginTime
	}
	setCondition(&st.Conditions, v1alpha1.ConditionReady, d.Ready, d.Reason, d.Message, sess.Generation, now)
	policy.RecordProgress(&st.Conditions, &st.ObservedGeneration, sess.Generation, now)
	// The series of a consumer are its cluster session's, with its own Ready.
	ms := sessionState(&st)
	if src != nil {
		ms = sessionState(&src.Status.M2MSessionStatus)
		ms.Ready = d.Ready
	}
	metrics.SetSession(sess.Namespace, sess.Name, ms)
	return ctrl.Result{}, client.IgnoreNotFound(memo.Record(ctx, r.Client, r.statuses, sess, cached, st, func(s v1alpha1.M2MSessionStatus) client.Object {
		c := sess.DeepCopy()
		c.Status = s
		return c
	}))
}

// actConsumer does what the decision says with the consumer's Secret (owned, as Get returned it).
func (r *M2MSessionReconciler) actConsumer(ctx context.Context, sess *v1alpha1.M2MSession, step policy.ConsumerStep, owned *corev1.Secret, data map[string][]byte) error {
	switch step {
	case policy.ConsumerPublish:
		_, err := r.Secrets.Apply(ctx, sess, owned, sess.Spec.SecretName, sess.Spec.SecretTemplate, data)
		return err
	case policy.ConsumerDelete:
		if owned != nil {
			return r.Secrets.Delete(ctx, sess, owned)
		}
	}
	return nil
}

// gatherConsumer reads what DecideSessionConsumer needs: the ClusterM2MSession, the admission of the
// consumer's namespace and the data of the source's Secret (nil when it holds no session).
func (r *M2MSessionReconciler) gatherConsumer(ctx context.Context, sess *v1alpha1.M2MSession) (policy.SessionConsumerFacts, *v1alpha1.ClusterM2MSession, map[string][]byte, error) {
	name := sess.Spec.ClusterSessionRef.Name
	f := policy.SessionConsumerFacts{Name: name}
	src := &v1alpha1.ClusterM2MSession{}
	if err := r.Get(ctx, types.NamespacedName{Name: name}, src); apierrors.IsNotFound(err) {
		f.OtherShard = r.otherShard(ctx, "ClusterM2MSession", types.NamespacedName{Name: name}, src)
		return f, nil, nil, nil
	} else if err != nil {
		return f, nil, nil, err
	}
	adm, err := r.admit(ctx, "ClusterM2MSession", name, src.Spec.AllowedNamespaces, sess.Namespace)
	if err != nil {
		return f, nil, nil, err
	}
	f.Found, f.Admission = true, adm
	f.SourceReady = meta.FindStatusCondition(src.Status.Conditions, v1alpha1.ConditionReady)
	if r.ClusterNamespace == "" {
		return f, src, nil, nil
	}
	secret, err := r.Secrets.Get(ctx, src, src.Spec.SecretName)
	if err != nil && !isConflict(err) {
		return f, nil, nil, err
	}
	if secret == nil || len(secret.Data[KeySessionToken]) == 0 {
		return f, src, nil, nil
	}
	data := make(map[string][]byte, len(consumedKeys))
	for _, k := range consumedKeys {
		data[k] = secret.Data[k]
	}
	f.HasData = true
	return f, src, data, nil
}

// consumersIn lists the consumers of ClusterM2MSessions in namespace ns.
func (r *M2MSessionReconciler) consumersIn(ctx context.Context, ns string) []v1alpha1.M2MSession {
	list := &v1alpha1.M2MSessionList{}
	if err := r.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil
	}
	return slices.DeleteFunc(list.Items, func(s v1alpha1.M2MSession) bool { return s.Spec.ClusterSessionRef == nil })
}

// consumerRequestsIn maps a namespace whose labels changed to the consumers in it.
func (r *M2MSessionReconciler) consumerRequestsIn(ctx context.Context, ns string) []reconcile.Request {
	var out []reconcile.Request
	for _, s := range r.consumersIn(ctx, ns) {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&s)})
	}
	return out
}
