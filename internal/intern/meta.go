package intern

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Default is the manager's table, shared by its cache transforms.
var Default = &Table{}

// Meta shares, in place, the parts of an object's metadata that repeat across objects: its namespace,
// its labels (one map for equal label sets, LabelMap, their strings shared), its annotations' keys, its
// owner references' group version and kind, and its managedFields entries' manager, operation, API
// version and fields type. For objects of an informer's store only (LabelMap).
func Meta(t *Table, o metav1.Object) {
	o.SetNamespace(t.String(o.GetNamespace()))
	if labels := o.GetLabels(); len(labels) > 0 {
		Labels(t, labels)
		o.SetLabels(LabelMap(t, labels))
	}
	Keys(t, o.GetAnnotations())
	refs := o.GetOwnerReferences()
	for i := range refs {
		refs[i].APIVersion, refs[i].Kind = t.String(refs[i].APIVersion), t.String(refs[i].Kind)
	}
	mf := o.GetManagedFields()
	for i := range mf {
		e := &mf[i]
		e.Manager, e.APIVersion, e.FieldsType = t.String(e.Manager), t.String(e.APIVersion), t.String(e.FieldsType)
		e.Operation = metav1.ManagedFieldsOperationType(t.String(string(e.Operation)))
	}
}
