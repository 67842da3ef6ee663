package secrets

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// ours reports whether a managedFields entry records writes of the operator: its applies, its creates
// (an Update as FieldOwner) and its Updates from before it applied.
func ours(e metav1.ManagedFieldsEntry) bool {
	return e.Manager == FieldOwner || e.Operation == metav1.ManagedFieldsOperationUpdate && e.Manager == legacyFieldManager()
}

// ownership is what a Secret's managedFields say the operator wrote.
type ownership struct {
	// known is false when the Secret carries no managedFields at all (a copy they were stripped from):
	// then nothing is known to be the operator's.
	known bool
	// applied are the fields of the operator's apply, which the next apply removes when it omits them.
	applied *fieldpath.Set
	// updated are the fields of its Update writes, which an apply cannot remove.
	updated *fieldpath.Set
	// all is both.
	all *fieldpath.Set
}

func ownershipOf(s *corev1.Secret) ownership {
	o := ownership{known: len(s.ManagedFields) > 0, applied: &fieldpath.Set{}, updated: &fieldpath.Set{}, all: &fieldpath.Set{}}
	for _, e := range s.ManagedFields {
		if !ours(e) || e.FieldsV1 == nil {
			continue
		}
		set := &fieldpath.Set{}
		if err := set.FromJSON(e.FieldsV1.GetRawReader()); err != nil {
			continue // an entry that cannot be read owns nothing we can act on
		}
		o.all = o.all.Union(set)
		if e.Operation == metav1.ManagedFieldsOperationApply {
			o.applied = o.applied.Union(set)
		} else {
			o.updated = o.updated.Union(set)
		}
	}
	return o
}

func labelPath(k string) fieldpath.Path { return fieldpath.MakePathOrDie("metadata", "labels", k) }
func annotationPath(k string) fieldpath.Path {
	return fieldpath.MakePathOrDie("metadata", "annotations", k)
}

// keepsBookkeeping reports whether the reserved annotation k on the Secret is the operator's own, to be
// carried into the next apply unless the Change removes it. Without managedFields every reserved
// annotation is, except the adoption consent, which is its owner's.
func (o ownership) keepsBookkeeping(k string) bool {
	if !o.known {
		return k != v1alpha1.AdoptAnnotation
	}
	return o.all.Has(annotationPath(k))
}

// metadataRemovals counts the labels and annotations on current that the operator wrote and desired
// no longer has; migrate says some of them belong to an Update write, so the apply alone would not
// remove them and the fields must be handed over first. Without managedFields only the operator's
// bookkeeping annotations are known to be its own.
func (o ownership) metadataRemovals(current, desired *corev1.Secret) (n int, migrate bool) {
	check := func(have, want map[string]string, path func(string) fieldpath.Path, bookkeeping func(string) bool) {
		for k := range have {
			if _, ok := want[k]; ok {
				continue
			}
			if !o.known {
				if bookkeeping(k) {
					n++
				}
				continue
			}
			if !o.all.Has(path(k)) {
				continue
			}
			n++
			if o.updated.Has(path(k)) {
				migrate = true
			}
		}
	}
	check(current.Labels, desired.Labels, labelPath, func(string) bool { return false })
	check(current.Annotations, desired.Annotations, annotationPath, func(k string) bool {
		return strings.HasPrefix(k, v1alpha1.ReservedPrefix) && k != v1alpha1.AdoptAnnotation
	})
	return n, migrate
}

// strayData lists the data keys on current that desired does not have. Data is the operator's alone,
// but an apply removes only the keys no other manager owns, and the cache keeps no other manager's
// entries to tell: they are removed explicitly. Rare: an adopted Secret's other keys, a key added by hand.
func strayData(current, desired *corev1.Secret) []string {
	var out []string
	for k := range current.Data {
		if _, ok := desired.Data[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
