package policy

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

func TestNamespaceAllowed(t *testing.T) {
	team := map[string]string{"team": "iot"}
	cases := []struct {
		name    string
		a       *v1alpha1.AllowedNamespaces
		ns      string
		labels  map[string]string
		want    bool
		wantErr bool
	}{
		{"unset allows none", nil, "a", team, false, false},
		{"empty allows none", &v1alpha1.AllowedNamespaces{}, "a", team, false, false},
		{"named", &v1alpha1.AllowedNamespaces{Names: []string{"b", "a"}}, "a", nil, true, false},
		{"not named", &v1alpha1.AllowedNamespaces{Names: []string{"b"}}, "a", team, false, false},
		{"empty selector allows all", &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{}}, "a", nil, true, false},
		{"selector matches", &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchLabels: team}}, "a", team, true, false},
		{"selector does not match", &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchLabels: team}}, "a", map[string]string{"team": "web"}, false, false},
		{"names or selector", &v1alpha1.AllowedNamespaces{Names: []string{"a"}, Selector: &metav1.LabelSelector{MatchLabels: team}}, "a", nil, true, false},
		{"expression", &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"iot", "fleet"}}}}}, "a", team, true, false},
		{"bad selector allows none", &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "team", Operator: "Near"}}}}, "a", team, false, true},
	}
	for _, c := range cases {
		got, err := NamespaceAllowed(c.a, c.ns, c.labels)
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("%s: got %v, %v; want %v, error %v", c.name, got, err, c.want, c.wantErr)
		}
	}
}
