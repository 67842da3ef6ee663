package policy

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// NamespaceAllowed says whether a cluster-scoped credential with allowedNamespaces a may be consumed from
// namespace ns, whose labels are nsLabels. Unset or empty allows nothing: sharing the platform's
// credentials must be written down, and `selector: {}` is how everything is allowed. A selector that
// cannot be parsed allows nothing and is reported, so a typo never widens access.
func NamespaceAllowed(a *v1alpha1.AllowedNamespaces, ns string, nsLabels map[string]string) (bool, error) {
	if a == nil {
		return false, nil
	}
	if slices.Contains(a.Names, ns) {
		return true, nil
	}
	if a.Selector == nil {
		return false, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(a.Selector)
	if err != nil {
		return false, fmt.Errorf("allowedNamespaces.selector: %w", err)
	}
	return sel.Matches(labels.Set(nsLabels)), nil
}

// NotAllowedMessage is the message of a consumer's Ready=False NotAllowed condition.
func NotAllowedMessage(kind, name, ns string) string {
	return fmt.Sprintf("%s %q does not allow namespace %q (its spec.allowedNamespaces); no Secret is written", kind, name, ns)
}
