package controller

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
)

// finalizerWrites remembers, per object (by UID), the finalizer state this process last patched, until a
// pass finds the cache showing it. A pass that reads its object before the cache shows the finalizer
// the previous pass added (the watch lags behind the writes under load; the previous pass's Secret write
// wakes the next one at once) would otherwise patch it again: one more write of the object per
// creation, and a merge patch computed from a stale copy replaces the whole finalizers list.
type finalizerWrites struct {
	mu sync.Mutex
	m  map[types.UID]bool // the state written: carrying the finalizer or not
}

func newFinalizerWrites() *finalizerWrites { return &finalizerWrites{m: map[types.UID]bool{}} }

// wrote reports whether this process patched uid's finalizer to want and no pass has seen that since.
func (f *finalizerWrites) wrote(uid types.UID, want bool) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.m[uid]
	return ok && w == want
}

func (f *finalizerWrites) patched(uid types.UID, want bool) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[uid] = want
}

func (f *finalizerWrites) forget(uid types.UID) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, uid)
}

// syncFinalizer makes obj carry finalizer exactly when want is true. When the cached obj says otherwise
// but this process patched it to want already, the API server is asked (a read past the cache, not a
// write): the cache is behind, or someone changed it since.
func syncFinalizer(ctx context.Context, d *Deps, obj client.Object, finalizer string, want bool) error {
	if controllerutil.ContainsFinalizer(obj, finalizer) == want {
		d.finalizers.forget(obj.GetUID())
		return nil
	}
	if d.finalizers.wrote(obj.GetUID(), want) && d.APIReader != nil {
		fresh := obj.DeepCopyObject().(client.Object)
		if err := d.APIReader.Get(ctx, client.ObjectKeyFromObject(obj), fresh); err != nil {
			return err
		}
		if fresh.GetUID() == obj.GetUID() && controllerutil.ContainsFinalizer(fresh, finalizer) == want {
			obj.SetFinalizers(fresh.GetFinalizers())
			d.finalizers.forget(obj.GetUID())
			return nil
		}
	}
	orig := obj.DeepCopyObject().(client.Object)
	if want {
		controllerutil.AddFinalizer(obj, finalizer)
	} else {
		controllerutil.RemoveFinalizer(obj, finalizer)
	}
	if err := d.Patch(ctx, obj, client.MergeFrom(orig)); err != nil {
		return err
	}
	d.finalizers.patched(obj.GetUID(), want)
	return nil
}

// releaseFinalizer removes finalizer from obj, tolerating an object that is already gone.
func releaseFinalizer(ctx context.Context, d *Deps, obj client.Object, finalizer string) error {
	d.finalizers.forget(obj.GetUID())
	orig := obj.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(obj, finalizer)
	return client.IgnoreNotFound(d.Patch(ctx, obj, client.MergeFrom(orig)))
}
