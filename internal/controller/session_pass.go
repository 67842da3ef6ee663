package controller

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/memo"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/policy"
)

// The UWS session core (sync, finalize and their actions, on sessState) serves two kinds: M2MSession and
// ClusterM2MSession. What differs between them is gathered here, once per pass: the object that owns the
// Secret and takes the events, where the credentials are, which kind of app appRef names, and the status
// type the pass records (a ClusterM2MSessionStatus inlines the M2MSessionStatus the core decides).

// appSource reads the app a session's appRef names. get returns the app as the core uses it (its spec,
// with the namespace its Secrets are in) and the object that owns its token Secret.
type appSource struct {
	kind string
	get  func(ctx context.Context, name string) (*v1alpha1.ThingSpaceApp, client.Object, error)
}

// namespacedApps reads ThingSpaceApps in the session's namespace.
func (r *M2MSessionReconciler) namespacedApps(ns string) appSource {
	return appSource{kind: "ThingSpaceApp", get: func(ctx context.Context, name string) (*v1alpha1.ThingSpaceApp, client.Object, error) {
		app := &v1alpha1.ThingSpaceApp{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, app); err != nil {
			return nil, nil, err
		}
		if app.Spec.ClusterAppRef != nil {
			return r.consumedApp(ctx, app) // m2msession_consumedapp.go
		}
		return app, app, nil
	}}
}

// sessionPass is one reconcile of a session object whose status type is S.
type sessionPass[S any] struct {
	obj client.Object
	// status points at obj's status; the pass replaces it with the one this process last decided.
	status *S
	mem    *memo.Statuses[S]
	// logout: the object asks for logoutOnDelete (the finalizer).
	logout bool
	// state is the core's view of obj deciding into st; cached is the API server's copy as read.
	state func(st, cached *S) *sessState
	// withStatus returns a copy of obj carrying a given status.
	withStatus func(S) client.Object
}

// runSession runs the session core over one object of either kind: the finalizer, the remembered
// status, sync or finalize, and the one status write (memo.Record).
func runSession[S any, P interface {
	*S
	DeepCopy() *S
}](ctx context.Context, r *M2MSessionReconciler, p sessionPass[S]) (ctrl.Result, error) {
	deleting := !p.obj.GetDeletionTimestamp().IsZero()
	if !deleting {
		if err := syncFinalizer(ctx, &r.Deps, p.obj, v1alpha1.LogoutFinalizer, p.logout); err != nil {
			return ctrl.Result{}, err
		}
	}
	cached := P(p.status).DeepCopy()
	known := p.mem.Get(client.ObjectKeyFromObject(p.obj), p.obj.GetUID(), *p.status)
	*p.status = *P(&known).DeepCopy()
	st := P(p.status).DeepCopy()
	s := p.state(st, cached)
	s.now = r.Clock.Now()
	var res ctrl.Result
	var syncErr error
	released := false
	if deleting {
		res, released, syncErr = r.finalize(ctx, s)
	} else {
		res, syncErr = r.sync(ctx, s)
		policy.RecordProgress(&s.st.Conditions, &s.st.ObservedGeneration, s.sess.Generation, r.Clock.Now())
	}
	decided := r.Clock.Now()
	if !released {
		// Past the reconcile's cancellation too: a reset or login that completed during shutdown must be
		// on record, or the next process repeats it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := memo.Record(rctx, r.Client, p.mem, p.obj, *cached, *st, p.withStatus); err != nil && (!deleting || !apierrors.IsNotFound(err)) {
			return ctrl.Result{}, err
		}
	}
	if !deleting {
		// A ClusterM2MSession's series carry namespace "" (its view has none).
		metrics.SetSession(s.sess.Namespace, s.sess.Name, sessionState(s.st))
	}
	if syncErr != nil {
		return ctrl.Result{}, syncErr
	}
	return r.sinceDecided(res, decided), nil
}
