package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/csaupgrade"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/intern"
)

// FieldOwner is the field manager of every Secret write of the operator.
const FieldOwner = "thingspace-operator"

// Write makes the Secret name match ch, stamped as in Apply, and returns the Secret as stored (its
// resourceVersion is the precondition of a following write) and whether anything was written. The
// write is conditional on current's resourceVersion: a Secret changed since it was read is a Conflict
// error, never silently overwritten.
//
// A Secret is created with Create (an apply would change a Secret of that name the caches have not
// shown yet) and written from then on with a server-side apply as FieldOwner: the labels, annotations
// and owner reference it applies are exactly the template's, the managed-by label, the bookkeeping
// annotations it keeps, and the controller reference, so what the template no longer names goes and
// what others put there stays. Data is the operator's alone and replaced wholesale: a key someone else
// added is removed too. A Secret last written with Update (before the operator applied) has its fields
// handed to FieldOwner first (client-go's csaupgrade), so the template keys it wrote can go as well.
func (w *Writer) Write(ctx context.Context, owner client.Object, current *corev1.Secret, name string, ch Change) (*corev1.Secret, bool, error) {
	stored, written, err := w.write(ctx, owner, current, name, ch)
	switch {
	case err != nil:
		// Whatever this Writer remembers of the Secret did not hold (a conflict, a Secret gone): the
		// caches or the API server know better.
		w.expect.forget(types.NamespacedName{Namespace: w.NamespaceOf(owner), Name: name})
	case written && w.Meta != nil:
		w.expect.wrote(stored)
	}
	return stored, written, err
}

func (w *Writer) write(ctx context.Context, owner client.Object, current *corev1.Secret, name string, ch Change) (*corev1.Secret, bool, error) {
	if current == nil {
		s, err := w.desired(owner, nil, ownership{}, name, ch)
		if err != nil {
			return nil, false, err
		}
		err = w.Client.Create(ctx, s, client.FieldOwner(FieldOwner))
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
	desired, removals, migrate, strays, err := w.plan(owner, current, name, ch)
	if err != nil {
		return nil, false, err
	}
	if removals == 0 && len(strays) == 0 && sameContent(current, desired) {
		return current, false, nil
	}
	base := current
	if migrate || len(strays) > 0 {
		if base, err = w.prepare(ctx, current, migrate, strays); err != nil {
			return nil, false, err
		}
		if !migrate && removals == 0 && sameContent(base, desired) {
			// Removing the stray keys was all there was to do (a consent Secret emptied): an apply
			// would be a second write that changes nothing but who owns the fields.
			return base, true, nil
		}
	}
	stored, err := w.apply(ctx, base.ResourceVersion, desired)
	if err != nil {
		return nil, false, err
	}
	return stored, true, nil
}

// Unchanged reports whether Write(ctx, owner, current, name, ch) would write nothing: current, a
// Secret owner may write, already holds ch. It makes no API call. A nil current is never unchanged.
func (w *Writer) Unchanged(owner client.Object, current *corev1.Secret, name string, ch Change) bool {
	if current == nil {
		return false
	}
	desired, removals, _, strays, err := w.plan(owner, current, name, ch)
	return err == nil && removals == 0 && len(strays) == 0 && sameContent(current, desired)
}

// plan is what a write of ch over current (not nil) takes: the Secret to apply, how many labels and
// annotations of the operator's go (migrate: some need their fields handed over first) and the data
// keys to remove explicitly.
func (w *Writer) plan(owner client.Object, current *corev1.Secret, name string, ch Change) (desired *corev1.Secret, removals int, migrate bool, strays []string, err error) {
	if err := checkWritable(current, owner, ch.Adopt); err != nil {
		return nil, 0, false, nil, err
	}
	own := ownershipOf(current)
	if desired, err = w.desired(owner, current, own, name, ch); err != nil {
		return nil, 0, false, nil, err
	}
	removals, migrate = own.metadataRemovals(current, desired)
	for k, v := range ch.Annotations {
		if _, has := current.Annotations[k]; has && v == "" && !own.known {
			removals++ // asked for by name: no need to know who wrote it
		}
	}
	return desired, removals, migrate, strayData(current, desired), nil
}

// desired is the Secret as the operator applies it: only the fields it owns.
// own is what current's managedFields say the operator wrote.
func (w *Writer) desired(owner client.Object, current *corev1.Secret, own ownership, name string, ch Change) (*corev1.Secret, error) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: w.NamespaceOf(owner), Name: name}, Type: corev1.SecretTypeOpaque}
	labels := map[string]string{}
	annotations := map[string]string{}
	if tmpl := ch.Template; tmpl != nil {
		maps.Copy(labels, tmpl.Labels)
		maps.Copy(annotations, tmpl.Annotations)
	}
	labels[v1alpha1.ManagedByLabel] = v1alpha1.ManagedByValue
	if current != nil {
		if current.Type != "" { // immutable: applying another would fail
			s.Type = current.Type
		}
		for k, v := range current.Annotations {
			if strings.HasPrefix(k, v1alpha1.ReservedPrefix) && own.keepsBookkeeping(k) {
				annotations[k] = v
			}
		}
	}
	for k, v := range ch.Annotations {
		if v == "" {
			delete(annotations, k)
		} else {
			annotations[k] = v
		}
	}
	s.Labels = labels
	if len(annotations) > 0 {
		s.Annotations = annotations
	}
	s.Data = maps.Clone(ch.Data)
	return s, controllerutil.SetControllerReference(owner, s, w.Scheme)
}

// prepare makes current ready for the apply with one JSON patch, conditional on its resourceVersion
// (the patch carries it, and a migration is computed from a fresh read of that same version):
// the fields the operator's Update writes own are handed to its apply (migrate), and the data keys the
// apply cannot remove (someone else's, or written by Update) are removed.
func (w *Writer) prepare(ctx context.Context, current *corev1.Secret, migrate bool, strays []string) (*corev1.Secret, error) {
	var ops []map[string]any
	if migrate {
		// The whole managedFields are replaced, so they are read past the cache, which keeps only the
		// operator's entries: the others' must survive.
		upgraded := &corev1.Secret{}
		if err := w.Reader.Get(ctx, client.ObjectKeyFromObject(current), upgraded); err != nil {
			return nil, err
		}
		if upgraded.ResourceVersion != current.ResourceVersion {
			return nil, apierrors.NewConflict(corev1.Resource("secrets"), current.Name,
				errors.New("the Secret changed since it was read"))
		}
		if err := csaupgrade.UpgradeManagedFields(upgraded, sets.New(FieldOwner, legacyFieldManager()), FieldOwner); err != nil {
			return nil, err
		}
		ops = append(ops, map[string]any{"op": "replace", "path": "/metadata/managedFields", "value": upgraded.ManagedFields})
	}
	for _, k := range strays {
		ops = append(ops, map[string]any{"op": "remove", "path": "/data/" + jsonPointerEscape(k)})
	}
	// "replace", not "test", as csaupgrade does: a changed Secret is then a Conflict, like any other
	// stale write, instead of an invalid request.
	ops = append(ops, map[string]any{"op": "replace", "path": "/metadata/resourceVersion", "value": current.ResourceVersion})
	patch, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	prepared := current.DeepCopy()
	if err := w.Client.Patch(ctx, prepared, client.RawPatch(types.JSONPatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
		return nil, err
	}
	return prepared, nil
}

// apply writes desired with a server-side apply as FieldOwner, conditional on resourceVersion, and
// returns the Secret as stored.
func (w *Writer) apply(ctx context.Context, resourceVersion string, desired *corev1.Secret) (*corev1.Secret, error) {
	desired = desired.DeepCopy()
	desired.ResourceVersion = resourceVersion
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
	if err != nil {
		return nil, err
	}
	unstructured.RemoveNestedField(obj, "metadata", "creationTimestamp")
	u := &unstructured.Unstructured{Object: obj}
	u.SetAPIVersion("v1")
	u.SetKind("Secret")
	if err := w.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return nil, err
	}
	stored := &corev1.Secret{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, stored); err != nil {
		return nil, err
	}
	return stored, nil
}

// sameContent reports whether current already holds what desired applies. Keys that are on current but
// not in desired are the caller's concern (metadataRemovals, strayData).
func sameContent(current, desired *corev1.Secret) bool {
	subset := func(want, have map[string]string) bool {
		for k, v := range want {
			if hv, ok := have[k]; !ok || hv != v {
				return false
			}
		}
		return true
	}
	return subset(desired.Labels, current.Labels) && subset(desired.Annotations, current.Annotations) &&
		maps.EqualFunc(current.Data, desired.Data, func(x, y []byte) bool { return string(x) == string(y) }) &&
		equalControllerUID(current, desired)
}

func equalControllerUID(a, b metav1.Object) bool {
	ra, rb := metav1.GetControllerOf(a), metav1.GetControllerOf(b)
	return (ra == nil) == (rb == nil) && (ra == nil || ra.UID == rb.UID)
}

// legacyFieldManager is the name the API server gave the operator's writes before they were applies:
// a write with no field manager is attributed to the client's user agent up to its first '/', which
// client-go makes the binary's name.
func legacyFieldManager() string {
	name, _, _ := strings.Cut(rest.DefaultKubernetesUserAgent(), "/")
	return name
}

// KeepOwnManagedFields is the cache transform of managed Secrets: it drops the managedFields entries of
// other managers (memory) and keeps the operator's, which Write reads to tell what it wrote from what
// others did, in the compact form ownershipOf needs (compactEntry).
func KeepOwnManagedFields(in any) (any, error) {
	if o, ok := in.(metav1.Object); ok {
		var kept []metav1.ManagedFieldsEntry
		for _, e := range o.GetManagedFields() {
			if ours(e) {
				kept = append(kept, compactEntry(e))
			}
		}
		o.SetManagedFields(kept)
	}
	return in, nil
}

// ownedMetadata are the paths of a managedFields entry that ownershipOf reads: labels and annotations.
var ownedMetadata = fieldpath.MakePrefixMatcherOrDie("metadata", "labels").Merge(fieldpath.MakePrefixMatcherOrDie("metadata", "annotations"))

// compactEntry is e as the cache keeps it: its manager and operation, and of its fields only the labels
// and annotations (data, type and owner references are the operator's alone; nothing reads them from
// here); no timestamp or API version. The fields of 10,000 Secrets written from one template are the
// same bytes, shared (intern.Default). An entry whose fields cannot be read is kept as it is.
func compactEntry(e metav1.ManagedFieldsEntry) metav1.ManagedFieldsEntry {
	out := metav1.ManagedFieldsEntry{Manager: intern.Default.String(e.Manager), FieldsType: intern.Default.String(e.FieldsType),
		Operation: metav1.ManagedFieldsOperationType(intern.Default.String(string(e.Operation)))}
	if e.FieldsV1 == nil {
		return out
	}
	set := &fieldpath.Set{}
	if err := set.FromJSON(e.FieldsV1.GetRawReader()); err != nil {
		return e
	}
	raw, err := set.FilterIncludeMatches(ownedMetadata).ToJSON()
	if err != nil {
		return e
	}
	// SetRawBytes would copy the bytes this shares.
	out.FieldsV1 = &metav1.FieldsV1{Raw: intern.Default.Bytes(raw)} //nolint:staticcheck // see above
	return out
}

func jsonPointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
