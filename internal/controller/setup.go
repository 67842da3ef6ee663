package controller

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/consent"
	"github.com/credops/thingspace-operator/internal/intern"
)

// Field indexes over the custom resources: which objects reference a Secret by name.
const (
	indexCredentialsSecret = "spec.credentialsSecretRef.name"
	indexTargetSecret      = "spec.secretName"
	// indexStandbySecret: the standby key set's Secret (ThingSpaceApp, ClusterThingSpaceApp).
	indexStandbySecret = "spec.standbyCredentialsSecretRef.name"
)

// Wiring holds what the controllers of every kind share in one manager.
type Wiring struct {
	// SecretMeta is a metadata-only cache of all Secrets. Credentials Secrets are the user's and carry no
	// label of ours, so they are watched through it: a change to them costs a reconcile, and their
	// contents are read past the cache only when needed.
	SecretMeta cache.Cache
	// MaxConcurrentReconciles bounds the workers per controller.
	MaxConcurrentReconciles int
	// Queues, when set, drives the work queues' delays (RequeueAfter, rate limits): a fake clock in tests,
	// so stepping it fires the requeues a reconcile asked for.
	Queues clock.WithTicker
	// SkipNameValidation lets several managers run in one process (tests).
	SkipNameValidation bool
	// OnReconciled, when set, sees every reconcile's outcome (tests assert requeue times with it).
	OnReconciled func(controller string, req reconcile.Request, res reconcile.Result, err error)
}

// controllerOptions are the options every controller is built with.
//
// EnableWarmup: a standby replica starts the controllers' sources (their informers, synced, and the
// queues the initial lists fill) before it leads, so that on winning the lease its workers reconcile
// at once. Without it the Secret informers (and those of every watched kind without an index) were
// created only once the lease was won, and the first pass waited for their lists and syncs: the token
// of a plain or renewBefore app that died across a failover stayed dead that much longer (issue 14's
// chaos runs; with it, the first passes begin within 2 ms of the lease). A standby holds the caches the
// leader holds.
func (w Wiring) controllerOptions() controller.Options {
	o := controller.Options{MaxConcurrentReconciles: max(w.MaxConcurrentReconciles, 1), EnableWarmup: ptr.To(true)}
	if w.SkipNameValidation {
		o.SkipNameValidation = ptr.To(true)
	}
	if clk := w.Queues; clk != nil {
		o.NewQueue = func(name string, rl workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
			return workqueue.NewTypedRateLimitingQueueWithConfig(rl, workqueue.TypedRateLimitingQueueConfig[reconcile.Request]{Name: name, Clock: clk})
		}
	}
	return o
}

// observed wraps r so that write conflicts requeue quietly and OnReconciled sees the outcomes.
func (w Wiring) observed(r reconcile.Reconciler) reconcile.Reconciler {
	name := fmt.Sprintf("%T", r)
	r = retryOutages(quietConflicts(r))
	if w.OnReconciled == nil {
		return r
	}
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		res, err := r.Reconcile(ctx, req)
		w.OnReconciled(name, req, res, err)
		return res, err
	})
}

// SetupWithManager registers the ThingSpaceApp controller.
func (r *ThingSpaceAppReconciler) SetupWithManager(mgr ctrl.Manager, w Wiring, notifications <-chan event.TypedGenericEvent[*v1alpha1.ThingSpaceApp]) error {
	if err := indexFields(mgr.GetFieldIndexer(), &v1alpha1.ThingSpaceApp{}, map[string]func(*v1alpha1.ThingSpaceApp) string{
		indexCredentialsSecret: func(a *v1alpha1.ThingSpaceApp) string { return a.Spec.CredentialsSecretRef.NameOrEmpty() },
		indexTargetSecret:      func(a *v1alpha1.ThingSpaceApp) string { return a.Spec.SecretName },
		indexStandbySecret:     func(a *v1alpha1.ThingSpaceApp) string { return a.Spec.StandbyCredentialsSecretRef.NameOrEmpty() },
		indexClusterAppRef: func(a *v1alpha1.ThingSpaceApp) string {
			if a.Spec.ClusterAppRef == nil {
				return ""
			}
			return a.Spec.ClusterAppRef.Name
		},
	}); err != nil {
		return err
	}
	return r.consumerWatches(kindController(mgr, "thingspaceapp", &v1alpha1.ThingSpaceApp{}).
		WatchesRawSource(source.Kind(w.SecretMeta, secretMeta(),
			handler.TypedEnqueueRequestsFromMapFunc(r.appsReferencingSecret))).
		WatchesRawSource(source.Channel(notifications, &handler.TypedEnqueueRequestForObject[*v1alpha1.ThingSpaceApp]{}))).
		WithOptions(w.controllerOptions()).
		Complete(w.observed(r))
}

// kindController begins the controller of a kind that writes Secrets: only spec and annotation
// changes (the refresh request) and deletion of obj need a pass, not its own status writes, and so do
// changes to the Secrets it controls.
func kindController(mgr ctrl.Manager, name string, obj client.Object) *builder.Builder {
	return ctrl.NewControllerManagedBy(mgr).
		Named(name).
		For(obj, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{})
}

// appsReferencingSecret maps a Secret event to the ThingSpaceApps that read it as credentials (primary
// or standby) or write it as their target (a foreign Secret in the way going away, say).
func (r *ThingSpaceAppReconciler) appsReferencingSecret(ctx context.Context, s *metav1.PartialObjectMetadata) []reconcile.Request {
	out := requestsWhere(ctx, r.Client, &v1alpha1.ThingSpaceAppList{}, s.Namespace, indexCredentialsSecret, s.Name)
	out = append(out, requestsWhere(ctx, r.Client, &v1alpha1.ThingSpaceAppList{}, s.Namespace, indexStandbySecret, s.Name)...)
	return append(out, requestsWhere(ctx, r.Client, &v1alpha1.ThingSpaceAppList{}, s.Namespace, indexTargetSecret, s.Name)...)
}

// Notifier turns broker notifications into reconcile requests for ThingSpaceApps.
func Notifier(ch chan<- event.TypedGenericEvent[*v1alpha1.ThingSpaceApp]) func(types.NamespacedName) {
	return func(nn types.NamespacedName) {
		app := &v1alpha1.ThingSpaceApp{}
		app.Namespace, app.Name = nn.Namespace, nn.Name
		ch <- event.TypedGenericEvent[*v1alpha1.ThingSpaceApp]{Object: app}
	}
}

func secretMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return m
}

// NewSecretMetaCache builds the metadata-only cache of all Secrets. It keeps only what the operator
// reads (name, namespace, labels, owner references, resourceVersion): annotations go, because a Secret
// applied with kubectl carries its whole content in last-applied-configuration; the strings that repeat
// across Secrets are shared (intern.Meta). Given namespaces, it
// watches only those (the manager's --watch-namespaces).
func NewSecretMetaCache(mgr ctrl.Manager, namespaces ...string) (cache.Cache, error) {
	return cache.New(mgr.GetConfig(), cache.Options{
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultNamespaces: namespaceConfig(namespaces),
		DefaultTransform: func(in any) (any, error) {
			if m, ok := in.(*metav1.PartialObjectMetadata); ok {
				m.Annotations = nil
				m.ManagedFields = nil
				intern.Meta(intern.Default, m)
			}
			return in, nil
		},
	})
}

// Field indexes over M2MSessions (indexAppRef over ClusterM2MSessions too).
const (
	indexAppRef            = "spec.appRef.name"
	indexClusterSessionRef = "spec.clusterSessionRef.name"
)

// SetupWithManager registers the M2MSession controller.
func (r *M2MSessionReconciler) SetupWithManager(mgr ctrl.Manager, w Wiring, announced <-chan event.TypedGenericEvent[*v1alpha1.M2MSession]) error {
	if err := indexFields(mgr.GetFieldIndexer(), &v1alpha1.M2MSession{}, map[string]func(*v1alpha1.M2MSession) string{
		indexAppRef:            func(s *v1alpha1.M2MSession) string { return s.Spec.AppRef.NameOrEmpty() },
		indexCredentialsSecret: func(s *v1alpha1.M2MSession) string { return s.Spec.CredentialsSecretRef.NameOrEmpty() },
		indexTargetSecret:      func(s *v1alpha1.M2MSession) string { return s.Spec.SecretName },
		indexClusterSessionRef: func(s *v1alpha1.M2MSession) string {
			if s.Spec.ClusterSessionRef == nil {
				return ""
			}
			return s.Spec.ClusterSessionRef.Name
		},
	}); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("m2msession").
		For(&v1alpha1.M2MSession{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}).
		// The app's token rotating (its managed Secret changing) or the app itself changing.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.sessionsOfAppSecret)).
		Watches(&v1alpha1.ThingSpaceApp{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return r.sessionsWhere(ctx, o.GetNamespace(), indexAppRef, o.GetName())
		})).
		// The app's new token, announced before its Secret write (wakeSessionsOf).
		WatchesRawSource(source.Channel(announced, &handler.TypedEnqueueRequestForObject[*v1alpha1.M2MSession]{})).
		WatchesRawSource(source.Kind(w.SecretMeta, secretMeta(),
			handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, s *metav1.PartialObjectMetadata) []reconcile.Request {
				return append(r.sessionsWhere(ctx, s.Namespace, indexCredentialsSecret, s.Name),
					r.sessionsWhere(ctx, s.Namespace, indexTargetSecret, s.Name)...)
			}))).
		// Consumers: their ClusterM2MSession (its status too: Ready is mirrored) and, below, their
		// namespace's labels (admission).
		Watches(&v1alpha1.ClusterM2MSession{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return r.sessionsWhere(ctx, "", indexClusterSessionRef, o.GetName())
		})).
		WithOptions(w.controllerOptions())
	return watchNamespaceLabels(b, r.consumerRequestsIn).Complete(w.observed(r))
}

// sessionsOfAppSecret maps a managed Secret written by a ThingSpaceApp to the sessions using that app.
// A ClusterM2MSession's Secret maps to its consumers.
func (r *M2MSessionReconciler) sessionsOfAppSecret(ctx context.Context, o client.Object) []reconcile.Request {
	ref := metav1.GetControllerOf(o)
	if ref == nil || ref.APIVersion != v1alpha1.GroupVersion.String() {
		return nil
	}
	switch ref.Kind {
	case "ThingSpaceApp":
		return r.sessionsWhere(ctx, o.GetNamespace(), indexAppRef, ref.Name)
	case "ClusterM2MSession":
		return r.sessionsWhere(ctx, "", indexClusterSessionRef, ref.Name)
	}
	return nil
}

// wakeSessionsOf queues the M2MSessions of the ThingSpaceApp app (announce.Board's wake): false when
// it has none. A full queue drops the wake; the app's Secret arriving brings the pass all the same.
func (r *M2MSessionReconciler) wakeSessionsOf(app types.NamespacedName, to chan<- event.TypedGenericEvent[*v1alpha1.M2MSession]) bool {
	reqs := r.sessionsWhere(context.Background(), app.Namespace, indexAppRef, app.Name)
	for _, q := range reqs {
		s := &v1alpha1.M2MSession{}
		s.Namespace, s.Name = q.Namespace, q.Name
		select {
		case to <- event.TypedGenericEvent[*v1alpha1.M2MSession]{Object: s}:
		default:
		}
	}
	return len(reqs) > 0
}

func (r *M2MSessionReconciler) sessionsWhere(ctx context.Context, ns, field, value string) []reconcile.Request {
	return requestsWhere(ctx, r.Client, &v1alpha1.M2MSessionList{}, ns, field, value)
}

// requestsWhere lists the objects of list's kind in ns whose field index holds value, as requests.
func requestsWhere(ctx context.Context, c client.Reader, list client.ObjectList, ns, field, value string) []reconcile.Request {
	if err := c.List(ctx, list, client.InNamespace(ns), client.MatchingFields{field: value}); err != nil {
		return nil
	}
	var out []reconcile.Request
	_ = meta.EachListItem(list, func(o runtime.Object) error {
		if obj, ok := o.(client.Object); ok {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
		}
		return nil
	})
	return out
}

// indexFields registers one field index of obj's kind per entry of fields; an empty value is not indexed.
func indexFields[T client.Object](idx client.FieldIndexer, obj T, fields map[string]func(T) string) error {
	for field, fn := range fields {
		extract := func(o client.Object) []string {
			if v := fn(o.(T)); v != "" {
				return []string{v}
			}
			return nil
		}
		if inf, ok := idx.(informerGetter); ok && inNamespaceOnly[field] {
			if err := indexInNamespace(inf, obj, field, extract); err != nil {
				return err
			}
			continue
		}
		if err := idx.IndexField(context.Background(), obj, field, extract); err != nil {
			return err
		}
	}
	return nil
}

// SetupWithManager registers the CloudAuthorization controller and the index the callback finds
// states by.
func (r *CloudAuthorizationReconciler) SetupWithManager(mgr ctrl.Manager, w Wiring) error {
	if err := indexFields(mgr.GetFieldIndexer(), &v1alpha1.CloudAuthorization{}, map[string]func(*v1alpha1.CloudAuthorization) string{
		indexCredentialsSecret: func(c *v1alpha1.CloudAuthorization) string { return c.Spec.CredentialsSecretRef.Name },
		indexTargetSecret:      func(c *v1alpha1.CloudAuthorization) string { return c.Spec.SecretName },
		consent.IndexField:     func(c *v1alpha1.CloudAuthorization) string { return c.Status.ConsentStateHash },
	}); err != nil {
		return err
	}
	r.wakeups = make(chan event.TypedGenericEvent[*v1alpha1.CloudAuthorization], 64)
	return ctrl.NewControllerManagedBy(mgr).
		Named("cloudauthorization").
		For(&v1alpha1.CloudAuthorization{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, consentFailed()))).
		// The callback writing the grant, a person editing a Secret.
		Owns(&corev1.Secret{}).
		// Credentials changing; a bootstrap Secret (not ours yet, so only in the metadata cache) appearing.
		WatchesRawSource(source.Kind(w.SecretMeta, secretMeta(),
			handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, s *metav1.PartialObjectMetadata) []reconcile.Request {
				reqs := append(r.cloudWhere(ctx, s.Namespace, indexCredentialsSecret, s.Name),
					r.cloudWhere(ctx, s.Namespace, indexTargetSecret, s.Name)...)
				// A grant Secret handed over for adoption (`<name>-grant`, not ours yet).
				if name, ok := strings.CutSuffix(s.Name, v1alpha1.GrantSecretSuffix); ok && name != "" {
					reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: name}})
				}
				return reqs
			}))).
		// The callback leaving a code exchange's tokens it could not store (see wake).
		WatchesRawSource(source.Channel(r.wakeups, &handler.TypedEnqueueRequestForObject[*v1alpha1.CloudAuthorization]{})).
		WithOptions(w.controllerOptions()).
		Complete(w.observed(r))
}

// wake asks for a pass over ca soon; it never blocks. A request dropped (a full channel, a standby
// replica whose controller is not running) is not lost for long: the leader looks at an object waiting
// for consent at least when its authorization URL expires.
func (r *CloudAuthorizationReconciler) wake(ca *v1alpha1.CloudAuthorization) {
	if r.wakeups == nil {
		return
	}
	o := &v1alpha1.CloudAuthorization{}
	o.Namespace, o.Name = ca.Namespace, ca.Name
	select {
	case r.wakeups <- event.TypedGenericEvent[*v1alpha1.CloudAuthorization]{Object: o}:
	default:
	}
}

// consentFailed passes the status change of a consent that ended at the callback without a grant (a
// denial, a failed exchange: the state is gone), so that a new link is offered at once, even by a
// manager in another process than the callback. A state spent for an exchange says so in the Authorized
// condition (consent.ExchangingMessage) until the exchange ends: a success brings its pass through the
// grant Secret's write, a failure changes that message.
func consentFailed() predicate.TypedPredicate[client.Object] {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		oldCA, ok1 := e.ObjectOld.(*v1alpha1.CloudAuthorization)
		newCA, ok2 := e.ObjectNew.(*v1alpha1.CloudAuthorization)
		if !ok1 || !ok2 || newCA.Status.ConsentStateHash != "" {
			return false
		}
		exchanging := func(ca *v1alpha1.CloudAuthorization) bool {
			c := meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionAuthorized)
			return c != nil && c.Message == consent.ExchangingMessage
		}
		return !exchanging(newCA) && (oldCA.Status.ConsentStateHash != "" || exchanging(oldCA))
	}}
}

func (r *CloudAuthorizationReconciler) cloudWhere(ctx context.Context, ns, field, value string) []reconcile.Request {
	return requestsWhere(ctx, r.Client, &v1alpha1.CloudAuthorizationList{}, ns, field, value)
}
