package secrets

import (
	"reflect"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/intern"
)

// OwnerKinds lists the kinds of the operator's API group in scheme: the kinds whose controller
// reference makes a Secret the operator's. Lists and the group's option types are not kinds of objects.
func OwnerKinds(scheme *runtime.Scheme) []string {
	var out []string
	for gvk, t := range scheme.KnownTypes(v1alpha1.GroupVersion) {
		obj, ok := reflect.New(t).Interface().(runtime.Object)
		if !ok {
			continue
		}
		if _, isObject := obj.(metav1.Object); !isObject {
			continue
		}
		if _, isList := obj.(metav1.ListInterface); isList {
			continue
		}
		out = append(out, gvk)
	}
	slices.Sort(out)
	return out
}

// ControlledByOperator reports whether obj's controller reference names an object of one of kinds in
// the operator's API group. Only such a Secret is one the operator wrote (or adopted): the managed-by
// label alone proves nothing, anyone who can create a Secret can set it.
func ControlledByOperator(obj metav1.Object, kinds []string) bool {
	ref := metav1.GetControllerOf(obj)
	if ref == nil {
		return false
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && gv.Group == v1alpha1.GroupVersion.Group && slices.Contains(kinds, ref.Kind)
}

// CacheTransform is the transform of the full-object Secret cache (Secrets labelled managed-by the
// operator). A Secret controlled by one of kinds keeps its data, its annotations and the operator's
// managedFields entries (KeepOwnManagedFields, compacted). Any other labelled Secret is kept as metadata only: its
// data, stringData, annotations (kubectl's last-applied-configuration repeats the data) and
// managedFields go, so a tenant labelling Secrets costs the manager no more memory than an unrelated
// Secret does. Nothing reads such a Secret's content from the cache: adoption and conflict checks read
// past it (Writer.Fresh, Writer.Write after AlreadyExists) or only look at its metadata.
func CacheTransform(kinds []string) toolscache.TransformFunc {
	kinds = slices.Clone(kinds)
	return func(in any) (any, error) {
		s, ok := in.(*corev1.Secret)
		if !ok {
			return KeepOwnManagedFields(in)
		}
		if ControlledByOperator(s, kinds) {
			_, _ = KeepOwnManagedFields(s)
		} else {
			s.Data, s.StringData, s.Annotations, s.ManagedFields = nil, nil, nil, nil
		}
		InternSecret(s)
		return s, nil
	}
}

// InternSecret shares the strings of s that repeat across Secrets (intern.Meta, its data keys and its
// type): a cached managed Secret is a few hundred bytes smaller.
func InternSecret(s *corev1.Secret) {
	intern.Meta(intern.Default, s)
	intern.Keys(intern.Default, s.Data)
	s.Type = corev1.SecretType(intern.Default.String(string(s.Type)))
}
