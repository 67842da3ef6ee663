package controller

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/internal/inflight"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/secrets"
)

// Deps are what every reconciler uses; Setup builds one set for all of them.
type Deps struct {
	client.Client
	// APIReader reads past the caches (credentials Secrets; CloudAuthorizations and their Secrets).
	APIReader client.Reader
	// Credentials reads credentials Secrets: past the cache once per version (credcache.Reader); nil
	// means APIReader every time.
	Credentials client.Reader
	Scheme      *runtime.Scheme
	Recorder    events.EventRecorder
	Clock       clock.PassiveClock
	// Rand returns values in [0,1) for jitter.
	Rand      func() float64
	Secrets   *secrets.Writer
	Endpoints *Endpoints
	Backoff   renewal.Backoff
	// InFlight registers persist-critical upstream calls; never nil under Setup.
	InFlight *inflight.Tracker
	// ClusterNamespace is where the cluster-scoped kinds' Secrets live (Options.ClusterResourceNamespace);
	// "" when the manager has none.
	ClusterNamespace string
	// Holders, when set, is the registry shared with the other managers (shards) of the cluster: no
	// revoke of a token another one holds (shard.go).
	Holders HolderRegistry
	// ShardSelector is the manager's --watch-label-selector (nil: none).
	ShardSelector labels.Selector
	// finalizers remembers the finalizer patches the caches may not show yet (finalizers.go); nil: none.
	finalizers *finalizerWrites
}

// credentialsReader is what credentials Secrets are read with.
func (d Deps) credentialsReader() client.Reader {
	if d.Credentials != nil {
		return d.Credentials
	}
	return d.APIReader
}

// setCondition sets a condition with the injected clock's time; meta.SetStatusCondition keeps the
// transition time when the status does not flip.
func setCondition(conds *[]metav1.Condition, typ string, status metav1.ConditionStatus, reason, msg string, gen int64, now time.Time) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: gen, LastTransitionTime: metav1.NewTime(renewal.Truncate(now)),
	})
}

func timePtr(t time.Time) *metav1.Time {
	mt := metav1.NewTime(renewal.Truncate(t))
	return &mt
}

// requeueAt asks to be woken at t, and never sooner than renewal.MinRetryDelay from now.
func (d Deps) requeueAt(t time.Time) ctrl.Result {
	// From the clock's now, not the pass's start: a pass of API writes takes 0.1-0.2 s on a loaded
	// machine, and a wake planned for a token's expiry would land that much after it.
	return ctrl.Result{RequeueAfter: max(t.Sub(d.Clock.Now()), renewal.MinRetryDelay)}
}

// sinceDecided re-bases res, planned by a pass at decided, on the clock's now: controller-runtime
// counts RequeueAfter from the reconcile's return, after the status write that follows the decision,
// and under slow API writes that write delayed a dead token's retry by its own duration (issue 14).
// Never below a millisecond: zero would mean no requeue at all.
func (d Deps) sinceDecided(res ctrl.Result, decided time.Time) ctrl.Result {
	if res.RequeueAfter > 0 {
		res.RequeueAfter = max(res.RequeueAfter-d.Clock.Since(decided), time.Millisecond)
	}
	return res
}

// expiryLayout is RFC 3339 in UTC with milliseconds: the operator replaces tokens at that precision,
// and a reader comparing an expiry with its clock must not see a token outlive its published expiry.
const expiryLayout = "2006-01-02T15:04:05.000Z07:00"

func formatExpiry(t time.Time) string { return t.UTC().Format(expiryLayout) }
