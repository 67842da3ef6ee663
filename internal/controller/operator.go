package controller

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/announce"
	"github.com/credops/thingspace-operator/internal/callback"
	"github.com/credops/thingspace-operator/internal/consent"
	"github.com/credops/thingspace-operator/internal/credcache"
	"github.com/credops/thingspace-operator/internal/endpoints"
	"github.com/credops/thingspace-operator/internal/eventrec"
	"github.com/credops/thingspace-operator/internal/inflight"
	"github.com/credops/thingspace-operator/internal/intern"
	"github.com/credops/thingspace-operator/internal/lockout"
	"github.com/credops/thingspace-operator/internal/memo"
	"github.com/credops/thingspace-operator/internal/passwords"
	"github.com/credops/thingspace-operator/internal/refreshes"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/secrets"
	"github.com/credops/thingspace-operator/internal/tokenbroker"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// Options are the manager-wide settings of the controllers.
type Options struct {
	// AllowInsecureEndpoints accepts plain http:// endpoints (and callback URLs).
	AllowInsecureEndpoints bool
	// AllowedEndpointHosts are the only hosts upstream requests go to (--allowed-endpoint-hosts); the
	// zero list means endpoints.DefaultHosts. Tests against a simulator pass its host, e.g. 127.0.0.1:*.
	AllowedEndpointHosts endpoints.AllowList
	// MaxConcurrentReconciles bounds the workers per controller.
	MaxConcurrentReconciles int
	// UpstreamTimeout bounds one request to a Verizon API.
	UpstreamTimeout time.Duration
	// Clock defaults to the real clock; tests inject their own.
	Clock clock.PassiveClock
	// Rand returns values in [0,1) for jitter; defaults to math/rand.
	Rand func() float64
	// Backoff for upstream failures; zero means renewal.DefaultBackoff.
	Backoff renewal.Backoff
	// CallbackBindAddress is where GET /oauth2/callback is served ("" or "0": not served).
	CallbackBindAddress string
	// CallbackListener, when set, serves the callback instead of CallbackBindAddress (tests).
	CallbackListener net.Listener
	// StateTTL bounds how long an authorization URL is accepted; zero means consent.DefaultTTL.
	StateTTL time.Duration
	// InFlight registers the persist-critical upstream calls (password reset, refresh-token rotation,
	// code exchange); the process drains it before exiting. Nil means a tracker of Setup's own.
	InFlight *inflight.Tracker
	// ClusterResourceNamespace holds the Secrets of the cluster-scoped kinds: their credentials and the
	// Secrets they write (--cluster-resource-namespace). "" (no flag, outside a cluster): those kinds are
	// not Ready and say why; the namespaced kinds are unaffected.
	ClusterResourceNamespace string
	// SkipNameValidation lets several managers run in one process (tests).
	SkipNameValidation bool
	// WatchNamespaces, when set, are the only namespaces the controllers watch and write in; the
	// manager's cache must have been built with CacheOptionsFor of the same list. Empty: all.
	WatchNamespaces []string
	// OnReconciled, when set, sees every reconcile's outcome, named by the reconciler's type (tests).
	OnReconciled func(controller string, req reconcile.Request, res reconcile.Result, err error)
	// Shard is this manager's part of a sharded fleet (shard.go): its label selector and the holder
	// registry it shares with the other shards.
	Shard ShardOptions
}

// DefaultStateTTL is consent.DefaultTTL, the default of --oauth-state-ttl.
const DefaultStateTTL = consent.DefaultTTL

// CacheOptions are the manager cache settings the controllers rely on, watching every namespace.
func CacheOptions() cache.Options { return CacheOptionsFor(nil) }

// CacheOptionsFor are the manager cache settings the controllers rely on, watching only namespaces
// (none: all of them; see WatchNamespaces). Only the Secrets the operator writes are cached in full, so
// the cluster's other Secrets cost nothing (credentials Secrets are watched through a separate
// metadata-only cache, see NewSecretMetaCache); and of the Secrets carrying the managed-by label, which
// anyone may set, only those a kind of the operator controls keep their data (secrets.CacheTransform).
func CacheOptionsFor(namespaces []string) cache.Options {
	s := runtime.NewScheme()
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return cache.Options{
		DefaultNamespaces: namespaceConfig(namespaces),
		ByObject: map[client.Object]cache.ByObject{
			// The operator's own managedFields entries stay: the Secret writer reads them to tell what it
			// wrote from what others did (server-side apply).
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}),
				Transform: secrets.CacheTransform(secrets.OwnerKinds(s))},
		},
		DefaultTransform: stripAndIntern,
	}
}

// stripAndIntern is the transform of every cached kind but Secrets: managedFields go (nothing reads
// them), and so does kubectl's last-applied-configuration annotation (nothing reads it either; an
// object applied with kubectl or Argo CD's default client-side apply carries its whole applied JSON
// there, a few hundred bytes an object, once more in the cache), and the strings that repeat across
// objects are shared (intern.Meta). Nothing writes a cached object back whole: finalizers and statuses
// are merge patches against a copy of it, which lacks the annotation as well, so it is never removed.
func stripAndIntern(in any) (any, error) {
	if o, err := meta.Accessor(in); err == nil {
		// The nil check as controller-runtime's TransformStripManagedFields (kubernetes issue 124337).
		if o.GetManagedFields() != nil {
			o.SetManagedFields(nil)
		}
		if a := o.GetAnnotations(); a != nil {
			if _, ok := a[corev1.LastAppliedConfigAnnotation]; ok {
				delete(a, corev1.LastAppliedConfigAnnotation)
				if len(a) == 0 {
					o.SetAnnotations(nil)
				}
			}
		}
	}
	if o, ok := in.(metav1.ObjectMetaAccessor); ok { // typed objects: their maps and slices in place
		intern.Meta(intern.Default, o.GetObjectMeta())
	}
	return in, nil
}

// namespaceConfig is cache.Options.DefaultNamespaces for namespaces; nil (all namespaces) for none.
func namespaceConfig(namespaces []string) map[string]cache.Config {
	if len(namespaces) == 0 {
		return nil
	}
	out := make(map[string]cache.Config, len(namespaces))
	for _, ns := range namespaces {
		out[ns] = cache.Config{}
	}
	return out
}

// Setup registers every controller with mgr, which must have been built with CacheOptions.
func Setup(mgr ctrl.Manager, o Options) error {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.InFlight == nil {
		o.InFlight = &inflight.Tracker{}
	}
	if o.Backoff == (renewal.Backoff{}) {
		o.Backoff = renewal.DefaultBackoff
	}
	if len(o.WatchNamespaces) > 0 && o.ClusterResourceNamespace != "" && !slices.Contains(o.WatchNamespaces, o.ClusterResourceNamespace) {
		// The cluster kinds' Secrets would be invisible to the caches.
		return fmt.Errorf("the watched namespaces %v lack the cluster resource namespace %q", o.WatchNamespaces, o.ClusterResourceNamespace)
	}
	secretMeta, err := NewSecretMetaCache(mgr, o.WatchNamespaces...)
	if err != nil {
		return err
	}
	if err := mgr.Add(secretMeta); err != nil {
		return err
	}
	wiring := Wiring{SecretMeta: secretMeta, MaxConcurrentReconciles: o.MaxConcurrentReconciles,
		SkipNameValidation: o.SkipNameValidation, OnReconciled: o.OnReconciled}
	// A clock that can tick (a fake one in tests) also drives the work queues, so requeues follow it.
	if clk, ok := o.Clock.(clock.WithTicker); ok {
		if _, real := o.Clock.(clock.RealClock); !real {
			wiring.Queues = clk
		}
	}
	if o.AllowedEndpointHosts.IsZero() {
		o.AllowedEndpointHosts = endpoints.MustParse(endpoints.DefaultHosts)
	}
	upstreams := &Endpoints{HTTP: upstream.NewHTTPClients(o.UpstreamTimeout), Clock: o.Clock,
		AllowInsecure: o.AllowInsecureEndpoints, Allowed: o.AllowedEndpointHosts, RequestTimeout: o.UpstreamTimeout}
	writer := &secrets.Writer{Client: mgr.GetClient(), Meta: secretMeta, Reader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(),
		ClusterNamespace: o.ClusterResourceNamespace}
	recorder, err := eventRecorder(mgr, "thingspace-operator")
	if err != nil {
		return err
	}

	// Credentials Secrets are read past the cache once per version.
	creds := &credcache.Reader{Meta: secretMeta, API: mgr.GetAPIReader()}
	if err := mgr.Add(credcache.Forgetter{Reader: creds, Cache: secretMeta}); err != nil {
		return err
	}
	if err := mgr.Add(credcache.Primer{Reader: creds, API: mgr.GetAPIReader(), WaitForCacheSync: mgr.GetCache().WaitForCacheSync,
		Namespaces: o.WatchNamespaces,
		Census:     credentialsCensus(mgr.GetCache(), secretMeta, o.ClusterResourceNamespace),
		NotOurs:    credcache.NotManagedBy(v1alpha1.ManagedByLabel, v1alpha1.ManagedByValue)}); err != nil {
		return err
	}
	deps := Deps{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Credentials: creds, Scheme: mgr.GetScheme(), Recorder: recorder,
		Clock: o.Clock, Rand: o.Rand, Secrets: writer, Endpoints: upstreams, Backoff: o.Backoff,
		InFlight: o.InFlight, ClusterNamespace: o.ClusterResourceNamespace, finalizers: newFinalizerWrites()}
	appEvents := make(chan event.TypedGenericEvent[*v1alpha1.ThingSpaceApp], 1024)
	clusterAppEvents := make(chan event.TypedGenericEvent[*v1alpha1.ClusterThingSpaceApp], 1024)
	broker := tokenbroker.New(o.Clock, brokerNotifier(appEvents, clusterAppEvents))
	sessionEvents := make(chan event.TypedGenericEvent[*v1alpha1.M2MSession], 1024)
	var sessions *M2MSessionReconciler // set below; the board wakes nothing before the manager runs
	board := announce.New(func(app types.NamespacedName) bool { return sessions.wakeSessionsOf(app, sessionEvents) })
	if err := setupShard(mgr, o, &deps, broker); err != nil {
		return err
	}
	apps := &ThingSpaceAppReconciler{
		Deps:     deps,
		Broker:   broker,
		Announce: board,
		statuses: memo.New[v1alpha1.ThingSpaceAppStatus](),
	}
	if err := apps.SetupWithManager(mgr, wiring, appEvents); err != nil {
		return err
	}
	clusterApps := &ClusterThingSpaceAppReconciler{Apps: apps, statuses: memo.New[v1alpha1.ClusterThingSpaceAppStatus]()}
	if err := clusterApps.SetupWithManager(mgr, wiring, clusterAppEvents); err != nil {
		return err
	}
	sessions = &M2MSessionReconciler{
		Deps:      deps,
		Broker:    broker,
		Announced: board,
		Gate:      lockout.New(),
		Pending:   passwords.NewStore(),
		statuses:  memo.New[v1alpha1.M2MSessionStatus](),
	}
	if err := sessions.SetupWithManager(mgr, wiring, sessionEvents); err != nil {
		return err
	}
	clusterSessions := NewClusterM2MSessionReconciler(sessions)
	if err := clusterSessions.SetupWithManager(mgr, wiring); err != nil {
		return err
	}
	if err := followCaches(mgr, apps, clusterApps, sessions, clusterSessions); err != nil {
		return err
	}

	timeout := o.UpstreamTimeout
	if timeout <= 0 {
		timeout = upstream.DefaultTimeout
	}
	states := &consent.Store{TTL: o.StateTTL}
	clouds := &CloudAuthorizationReconciler{
		Deps:    deps,
		Consent: states,
		// A refresh this long after its marker was written has either been stored or was interrupted.
		InFlightBound: timeout + 5*time.Second,
		Refreshes:     refreshes.New(),
	}
	if err := clouds.SetupWithManager(mgr, wiring); err != nil {
		return err
	}
	// Shutdown begins with the runnables that need no leader; from then on no persist-critical call
	// starts (issue 8 scenario 18), while those in flight finish and are waited for by main.
	if err := mgr.Add(shutdownGate{o.InFlight}); err != nil {
		return err
	}
	if err := mgr.Add(releaseAfterSync{full: mgr.GetCache(), meta: secretMeta}); err != nil {
		return err
	}
	if o.CallbackListener == nil && (o.CallbackBindAddress == "" || o.CallbackBindAddress == "0") {
		return nil
	}
	return mgr.Add(&callback.Server{
		Listener: o.CallbackListener,
		Addr:     o.CallbackBindAddress,
		Handler: callback.NewHandler(callback.Handler{
			Client:    mgr.GetClient(),
			APIReader: mgr.GetAPIReader(),
			Backend:   cloudBackend{clouds},
			Consent:   states,
			Clock:     o.Clock,
			Recorder:  recorder,
			InFlight:  o.InFlight,
		}),
	})
}

// eventRecorder is the recorder of the controllers and the callback: eventrec's, the Events of
// controller-runtime's recorder with a bounded memory for series (client-go's broadcaster keeps every
// Event for six minutes: 10,000 of them after creating 10,000 ThingSpaceApps).
func eventRecorder(mgr ctrl.Manager, name string) (events.EventRecorder, error) {
	cl, err := eventsv1client.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, err
	}
	b := &eventrec.Broadcaster{Sink: &events.EventSinkImpl{Interface: cl}, Scheme: mgr.GetScheme(), Logger: mgr.GetLogger().WithName("events")}
	if err := mgr.Add(b); err != nil {
		return nil, err
	}
	return b.NewRecorder(name), nil
}

// shutdownGate marks the in-flight tracker draining as soon as the manager begins to stop.
// controller-runtime stops the runnables that need no leader first and the reconcilers only after
// them, out of one graceful budget; without the gate a reconciler could start a refresh while the
// rest of the manager is already going away.
type shutdownGate struct{ tracker *inflight.Tracker }

// NeedLeaderElection is false: the gate must run, and fire, on every replica.
func (shutdownGate) NeedLeaderElection() bool { return false }

// Start waits for the manager to stop, then refuses new persist-critical calls. It does not wait
// for the registered ones (main does): Drain with an ended context only marks the tracker.
func (g shutdownGate) Start(ctx context.Context) error {
	<-ctx.Done()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	g.tracker.Drain(done)
	return nil
}
