package controller

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/callback"
	"github.com/credops/thingspace-operator/internal/cloudapi"
	"github.com/credops/thingspace-operator/internal/consent"
	"github.com/credops/thingspace-operator/internal/inflight"
	"github.com/credops/thingspace-operator/internal/refreshes"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/secrets"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// The internet-facing OAuth2 endpoints in a process of their own (manager flag --callback-only): no
// reconciler, no leader election, no Secret cache. What the handler does there, and the rights it needs
// for it (config/callback-only/callback_role.yaml):
//
//   - finds a CloudAuthorization by its consent's state hash: get, list, watch cloudauthorizations;
//   - spends the state and records a failure: patch cloudauthorizations/status;
//   - reads the app's client id and secret for the redirect and the code exchange, and the grant Secret
//     before writing it: get secrets;
//   - writes the grant Secret (`<name>-grant`): create and patch secrets;
//   - says what happened: create events.
//
// It does not write the workload's Secret, the consent Secret or anything but status of a custom
// resource; the reconcilers (another process, with the callback off) publish the access token and
// offer new links. The code cannot be handed over instead of exchanged: it is single-use, short-lived,
// and only the client secret makes it worth anything, so the process that receives it exchanges it at
// once and stores the grant before answering.

// SetupCallbackOnly registers only the OAuth2 start and callback server with mgr (which needs no leader
// election and must have been built with CacheOptions).
func SetupCallbackOnly(mgr ctrl.Manager, o Options) error {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.InFlight == nil {
		o.InFlight = &inflight.Tracker{}
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.CloudAuthorization{}, consent.IndexField, consentHashIndex); err != nil {
		return err
	}
	deps := Deps{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(),
		Recorder: mgr.GetEventRecorder("thingspace-operator-callback"), Clock: o.Clock, Rand: rand.Float64,
		// No metadata cache: the callback reads Secrets past the caches only (Fresh), by name.
		Secrets: &secrets.Writer{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Scheme: mgr.GetScheme()},
		Endpoints: &Endpoints{HTTP: upstream.NewHTTPClients(o.UpstreamTimeout), Clock: o.Clock, AllowInsecure: o.AllowInsecureEndpoints,
			Allowed: o.AllowedEndpointHosts, RequestTimeout: o.UpstreamTimeout},
		Backoff: renewal.DefaultBackoff, InFlight: o.InFlight,
	}
	keeper := &grantKeeper{deps: &deps, pending: refreshes.New(), wake: make(chan struct{}, 1)}
	if err := mgr.Add(keeper); err != nil {
		return err
	}
	if err := mgr.Add(shutdownGate{o.InFlight}); err != nil {
		return err
	}
	return mgr.Add(&callback.Server{
		Listener: o.CallbackListener,
		Addr:     o.CallbackBindAddress,
		Handler: callback.NewHandler(callback.Handler{
			Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
			Backend:  callbackOnlyBackend{cloudBackend{&CloudAuthorizationReconciler{Deps: deps}}, keeper},
			Consent:  &consent.Store{TTL: o.StateTTL},
			Clock:    o.Clock,
			Recorder: deps.Recorder,
			InFlight: o.InFlight,
		}),
	})
}

// callbackOnlyBackend is cloudBackend without a reconciler in the process: tokens it could not store
// go to the grantKeeper instead.
type callbackOnlyBackend struct {
	cloudBackend
	keeper *grantKeeper
}

func (b callbackOnlyBackend) KeepGrant(ca *v1alpha1.CloudAuthorization, tokens cloudapi.Tokens, received time.Time) {
	b.keeper.keep(ca, tokens, received)
}

// grantKeeper stores, for as long as the process lives, the code exchanges' tokens the callback could
// not write (the code is spent: they exist nowhere else), retrying every few seconds. It runs on every
// replica and is stopped last (it needs no leader): a shutdown makes one last try.
type grantKeeper struct {
	deps    *Deps
	pending *refreshes.Store
	// objects are the CloudAuthorizations with tokens waiting, by UID.
	objects map[types.UID]*v1alpha1.CloudAuthorization
	wake    chan struct{}
	mu      sync.Mutex
}

func (k *grantKeeper) NeedLeaderElection() bool { return false }

func (k *grantKeeper) keep(ca *v1alpha1.CloudAuthorization, tokens cloudapi.Tokens, received time.Time) {
	k.mu.Lock()
	if k.objects == nil {
		k.objects = map[types.UID]*v1alpha1.CloudAuthorization{}
	}
	k.objects[ca.UID] = ca.DeepCopy()
	k.mu.Unlock()
	k.pending.Exchanged(ca.UID, tokens, received, grantExpiry(tokens, received))
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// Start retries the waiting grants every few seconds until ctx ends, then once more.
func (k *grantKeeper) Start(ctx context.Context) error {
	tick := time.NewTicker(3 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			k.storeAll(context.WithoutCancel(ctx))
			return nil
		case <-tick.C:
		case <-k.wake:
		}
		k.storeAll(ctx)
	}
}

func (k *grantKeeper) storeAll(ctx context.Context) {
	k.mu.Lock()
	objs := make([]*v1alpha1.CloudAuthorization, 0, len(k.objects))
	for _, ca := range k.objects {
		objs = append(objs, ca)
	}
	k.mu.Unlock()
	for _, ca := range objs {
		e, ok := k.pending.Get(ca.UID)
		if !ok || e.Outcome != refreshes.Exchanged {
			continue
		}
		sec, err := k.deps.Secrets.Fresh(ctx, ca, v1alpha1.GrantSecretName(ca), adoptable)
		if err == nil {
			_, err = writeGrant(ctx, k.deps, ca, sec, e.Tokens, e.Issued, e.ExpiresAt)
		}
		if err != nil {
			log.FromContext(ctx).Info("Storing a consent's tokens failed; retrying", "cloudAuthorization", ca.Namespace+"/"+ca.Name,
				"error", describeStoreFailure(err))
			continue
		}
		k.pending.Stored(ca.UID, e)
		k.mu.Lock()
		delete(k.objects, ca.UID)
		k.mu.Unlock()
	}
}

// consentHashIndex is the value of consent.IndexField for a CloudAuthorization.
func consentHashIndex(o client.Object) []string {
	if h := o.(*v1alpha1.CloudAuthorization).Status.ConsentStateHash; h != "" {
		return []string{h}
	}
	return nil
}
