// Package secrets is the one place the operator writes Kubernetes Secrets. It stamps the managed-by
// label, the controller ownerReference and the user's template on every Secret, and refuses to touch a
// Secret that another object (or a person) owns.
//
// Reads go through the manager's caches: a metadata-only cache of all Secrets (cheap, to see whether a
// name is taken and by whom) and a full cache of managed Secrets only, so unrelated Secrets in the
// cluster cost no memory beyond their metadata.
package secrets

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

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
}

// Get returns the Secret name in owner's namespace when owner manages it, nil when no Secret of that
// name exists, and a *ConflictError when it exists but belongs to someone else.
func (w *Writer) Get(ctx context.Context, owner client.Object, name string) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: owner.GetNamespace(), Name: name}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := w.Meta.Get(ctx, key, meta); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	if err := checkOwned(meta, owner); err != nil {
		return nil, err
	}
	s := &corev1.Secret{}
	if err := w.Client.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			// The metadata cache saw it first; the managed cache will follow and trigger a reconcile.
			return nil, nil
		}
		return nil, err
	}
	return s, nil
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
	// Annotations are the operator's own bookkeeping annotations: a value sets one, "" removes it.
	Annotations map[string]string
	// Adopt lets the write take over a Secret that carries no controller reference (see Fresh).
	Adopt bool
}

// Write makes the Secret name match ch, stamped as in Apply, and returns the Secret as stored (its
// resourceVersion is the precondition of a following write) and whether anything was written. The
// update is conditional on current's resourceVersion: a Secret changed since it was read is a
// Conflict error, never silently overwritten.
func (w *Writer) Write(ctx context.Context, owner client.Object, current *corev1.Secret, name string, ch Change) (*corev1.Secret, bool, error) {
	if current == nil {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: owner.GetNamespace(), Name: name}, Type: corev1.SecretTypeOpaque}
		if err := w.stamp(owner, s, ch); err != nil {
			return nil, false, err
		}
		err := w.Client.Create(ctx, s)
		if err == nil {
			return s, true, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, false, err
		}
		// Either a foreign Secret the caches have not shown us yet, or our own create that the cache
		// has not caught up with: ask the API server which.
		current = &corev1.Secret{}
		if err := w.Reader.Get(ctx, client.ObjectKeyFromObject(s), current); err != nil {
			return nil, false, err
		}
	}
	if err := checkWritable(current, owner, ch.Adopt); err != nil {
		return nil, false, err
	}
	desired := current.DeepCopy()
	if err := w.stamp(owner, desired, ch); err != nil {
		return nil, false, err
	}
	if equalSecret(current, desired) {
		return current, false, nil
	}
	if err := w.Client.Update(ctx, desired); err != nil {
		return nil, false, err
	}
	return desired, true, nil
}

// Fresh reads the Secret name past the caches, for decisions that must not act on a stale copy (a
// rotating refresh token must never be sent twice). It returns nil when no such Secret exists, and a
// *ConflictError when another object controls it, or when nobody does and adoptable (nil: never)
// does not accept it.
func (w *Writer) Fresh(ctx context.Context, owner client.Object, name string, adoptable func(*corev1.Secret) bool) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	if err := w.Reader.Get(ctx, types.NamespacedName{Namespace: owner.GetNamespace(), Name: name}, s); err != nil {
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

func (w *Writer) stamp(owner client.Object, s *corev1.Secret, ch Change) error {
	if tmpl := ch.Template; tmpl != nil {
		s.Labels = mergeInto(s.Labels, tmpl.Labels)
		s.Annotations = mergeInto(s.Annotations, tmpl.Annotations)
	}
	s.Labels = mergeInto(s.Labels, map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue})
	for k, v := range ch.Annotations {
		if v == "" {
			delete(s.Annotations, k)
			continue
		}
		s.Annotations = mergeInto(s.Annotations, map[string]string{k: v})
	}
	s.Data = maps.Clone(ch.Data)
	return controllerutil.SetControllerReference(owner, s, w.Scheme)
}

func mergeInto(dst, src map[string]string) map[string]string {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(map[string]string, len(src))
	}
	maps.Copy(dst, src)
	return dst
}

func equalSecret(a, b *corev1.Secret) bool {
	return maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations) &&
		maps.EqualFunc(a.Data, b.Data, func(x, y []byte) bool { return string(x) == string(y) }) &&
		len(a.OwnerReferences) == len(b.OwnerReferences) && equalControllerUID(a, b)
}

func equalControllerUID(a, b metav1.Object) bool {
	ra, rb := metav1.GetControllerOf(a), metav1.GetControllerOf(b)
	return (ra == nil) == (rb == nil) && (ra == nil || ra.UID == rb.UID)
}
