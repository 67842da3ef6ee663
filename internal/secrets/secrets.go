// Package secrets is the one place the operator writes Kubernetes Secrets. It stamps the managed-by
// label, the controller ownerReference and the user's template on every Secret, and refuses to touch a
// Secret that another object (or a person) owns.
//
// Writes are server-side applies with the field owner FieldOwner, so a label or annotation removed from
// a secretTemplate goes from the Secret while those others put there stay (see apply.go).
//
// Reads go through the manager's caches: a metadata-only cache of all Secrets (cheap, to see whether a
// name is taken and by whom) and a full cache of managed Secrets only, so unrelated Secrets in the
// cluster cost no memory beyond their metadata.
package secrets

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// ConflictError says a Secret of the wanted name exists and is not managed by the asking object.
// It names the Secret and the reason only.
type ConflictError struct {
	Name   string
	Reason string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("secret %q exists and is not managed by this object: %s", e.Name, e.Reason)
}

// Writer reads and writes the Secrets the operator manages.
type Writer struct {
	// Client reads managed Secrets from the manager's label-filtered cache and writes to the API server.
	Client client.Client
	// Meta reads the metadata of every Secret (a metadata-only cache): it tells whether a name is taken
	// by a Secret the managed cache cannot see.
	Meta client.Reader
	// Reader reads past the caches; used only to settle a create that raced the cache.
	Reader client.Reader
	Scheme *runtime.Scheme
	// ClusterNamespace is where the Secrets of cluster-scoped owners (ClusterThingSpaceApp,
	// ClusterM2MSession) live: the manager's --cluster-resource-namespace.
	ClusterNamespace string

	// expect remembers this Writer's writes the caches may not show yet (expect.go); only a Writer
	// that reads caches (Meta set) keeps them.
	expect expectations
}

// NamespaceOf is the namespace of the Secrets owner writes: its own, or ClusterNamespace for a
// cluster-scoped owner.
func (w *Writer) NamespaceOf(owner client.Object) string {
	if ns := owner.GetNamespace(); ns != "" {
		return ns
	}
	return w.ClusterNamespace
}

// Get returns the Secret name in owner's namespace (NamespaceOf) when owner manages it, nil when no Secret of that
// name exists, and a *ConflictError when it exists but belongs to someone else.
//
// It reads the caches, except while they have not caught up with this Writer's last write of the
// Secret: then it answers from that write (expect.go), without asking the API server.
func (w *Writer) Get(ctx context.Context, owner client.Object, name string) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: w.NamespaceOf(owner), Name: name}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := w.Meta.Get(ctx, key, meta); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
		meta = nil
	}
	s := &corev1.Secret{}
	if err := w.Client.Get(ctx, key, s); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
		s = nil
	}
	if e, ok := w.expect.get(key); ok {
		switch remembered, pending := w.pending(key, e, objectOrNil(meta), objectOrNil(s)); {
		case pending && remembered == nil:
			return nil, nil
		case pending:
			if err := checkOwned(remembered, owner); err != nil {
				return nil, err
			}
			return remembered, nil
		}
	}
	if meta == nil {
		return nil, nil
	}
	if err := checkOwned(meta, owner); err != nil {
		return nil, err
	}
	if s == nil || s.ResourceVersion != meta.ResourceVersion {
		// The two caches disagree: one of them has not seen the last write yet (someone else's, or ours
		// beyond what the expectations keep). Deciding from the stale one writes again what is already
		// there: 4 % of 10,000 new ThingSpaceApps were created twice (refused), 10 % of 1,000 rotations
		// applied twice, with 50 workers (make bench). Ask the API server instead.
		s = &corev1.Secret{}
		if err := w.Reader.Get(ctx, key, s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, err
		}
	}
	return s, nil
}

// pending reports whether a cache (meta, the metadata cache's copy, or full, the managed cache's; nil:
// absent) has not caught up with e yet, and then what this Writer wrote (a copy; nil for a delete). An
// expectation both caches have caught up with, or that one of them has gone past, is dropped.
func (w *Writer) pending(key types.NamespacedName, e expectation, meta, full metav1.Object) (*corev1.Secret, bool) {
	vm, vf := e.view(meta), e.view(full)
	if vm == viewAhead || vf == viewAhead || vm == viewCaughtUp && vf == viewCaughtUp {
		w.expect.forget(key)
		return nil, false
	}
	if e.stored == nil {
		return nil, true
	}
	return e.stored.DeepCopy(), true
}

// objectOrNil is o as a metav1.Object, nil when o is a nil pointer.
func objectOrNil[T any, P interface {
	*T
	metav1.Object
}](o P) metav1.Object {
	if o == nil {
		return nil
	}
	return o
}

// Apply makes the Secret name hold exactly data, with the managed-by label, the template's labels and
// annotations and a controller reference to owner. current is what Get returned. It reports whether
// anything was written.
func (w *Writer) Apply(ctx context.Context, owner client.Object, current *corev1.Secret, name string,
	tmpl *v1alpha1.SecretTemplate, data map[string][]byte) (bool, error) {
	_, written, err := w.Write(ctx, owner, current, name, Change{Template: tmpl, Data: data})
	return written, err
}

// Change is the content of one write.
type Change struct {
	// Template holds the user's labels and annotations.
	Template *v1alpha1.SecretTemplate
	// Data replaces the Secret's data wholesale.
	Data map[string][]byte
	// Annotations are the operator's own bookkeeping annotations (under v1alpha1.ReservedPrefix): a
	// value sets one, "" removes it, and those not named are kept.
	Annotations map[string]string
	// Adopt lets the write take over a Secret that carries no controller reference (see Fresh).
	Adopt bool
}

// Fresh reads the Secret name past the caches, for decisions that must not act on a stale copy (a
// rotating refresh token must never be sent twice). It returns nil when no such Secret exists, and a
// *ConflictError when another object controls it, or when nobody does and adoptable (nil: never)
// does not accept it.
func (w *Writer) Fresh(ctx context.Context, owner client.Object, name string, adoptable func(*corev1.Secret) bool) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	if err := w.Reader.Get(ctx, types.NamespacedName{Namespace: w.NamespaceOf(owner), Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	if err := checkOwned(s, owner); err == nil {
		return s, nil
	} else if metav1.GetControllerOf(s) != nil || adoptable == nil || !adoptable(s) {
		return nil, err
	}
	return s, nil
}

// Delete deletes current, a Secret owner manages (as Get returned it), on condition that it is still the
// version read: a Secret someone changed or recreated since is left alone (the caller looks again).
// A Secret already gone is no error.
func (w *Writer) Delete(ctx context.Context, owner client.Object, current *corev1.Secret) error {
	if err := checkOwned(current, owner); err != nil {
		return err
	}
	uid, rv := current.UID, current.ResourceVersion
	err := client.IgnoreNotFound(w.Client.Delete(ctx, current,
		client.Preconditions{UID: &uid, ResourceVersion: &rv}))
	switch {
	case err == nil && w.Meta != nil:
		w.expect.deleted(current)
	case err != nil:
		w.expect.forget(client.ObjectKeyFromObject(current))
	}
	return err
}

// checkWritable is checkOwned, relaxed for adoption: a Secret nobody controls may be taken over.
func checkWritable(obj metav1.Object, owner client.Object, adopt bool) error {
	if adopt && metav1.GetControllerOf(obj) == nil {
		return nil
	}
	return checkOwned(obj, owner)
}

// IsManaged reports whether obj carries the operator's managed-by label.
func IsManaged(obj metav1.Object) bool {
	return obj.GetLabels()[v1alpha1.ManagedByLabel] == v1alpha1.ManagedByValue
}

func checkOwned(obj metav1.Object, owner client.Object) error {
	if !IsManaged(obj) {
		return &ConflictError{Name: obj.GetName(), Reason: "it lacks the label " + v1alpha1.ManagedByLabel + "=" + v1alpha1.ManagedByValue}
	}
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.UID != owner.GetUID() {
		return &ConflictError{Name: obj.GetName(), Reason: "another object controls it"}
	}
	return nil
}
