package policy

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

func TestDecideSessionConsumer(t *testing.T) {
	all := &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{}}
	named := &v1alpha1.AllowedNamespaces{Names: []string{"team-a"}}
	bad := &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Near"}}}}
	admit := func(a *v1alpha1.AllowedNamespaces, ns string) Admission {
		return Admit("ClusterM2MSession", "fleet", a, ns, nil)
	}
	ready := &metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSessionValid, Message: "The Secret holds a live session"}
	failing := &metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonLoginRejected, Message: "refused"}
	unknown := &metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionUnknown, Reason: v1alpha1.ReasonPending}
	base := SessionConsumerFacts{Name: "fleet", Found: true, Admission: admit(all, "team-a"), SourceReady: ready, HasData: true}
	with := func(m func(*SessionConsumerFacts)) SessionConsumerFacts { f := base; m(&f); return f }
	cases := []struct {
		name   string
		f      SessionConsumerFacts
		step   ConsumerStep
		ready  metav1.ConditionStatus
		reason string
		msg    string
	}{
		{"ready source is copied and mirrored", base, ConsumerPublish, metav1.ConditionTrue, v1alpha1.ReasonSessionValid, `ClusterM2MSession "fleet": The Secret holds a live session`},
		{"allowed by name", with(func(f *SessionConsumerFacts) { f.Admission = admit(named, "team-a") }), ConsumerPublish, metav1.ConditionTrue, v1alpha1.ReasonSessionValid, ""},
		{"not named: the copy goes", with(func(f *SessionConsumerFacts) { f.Admission = admit(named, "team-b") }), ConsumerDelete, metav1.ConditionFalse, v1alpha1.ReasonNotAllowed, `does not allow namespace "team-b"`},
		{"unset allows none", with(func(f *SessionConsumerFacts) { f.Admission = admit(nil, "team-a") }), ConsumerDelete, metav1.ConditionFalse, v1alpha1.ReasonNotAllowed, ""},
		{"a bad selector allows none and says why", with(func(f *SessionConsumerFacts) { f.Admission = admit(bad, "team-a") }), ConsumerDelete, metav1.ConditionFalse, v1alpha1.ReasonNotAllowed, "allowedNamespaces.selector"},
		{"not allowed hides the source's state", with(func(f *SessionConsumerFacts) { f.Admission = admit(nil, "team-a"); f.SourceReady = failing }), ConsumerDelete, metav1.ConditionFalse, v1alpha1.ReasonNotAllowed, ""},
		{"source gone keeps the copy", with(func(f *SessionConsumerFacts) { f.Found = false; f.Admission = Admission{} }), ConsumerKeep, metav1.ConditionFalse, v1alpha1.ReasonPending, "not found"},
		{"source not ready is mirrored, its copy kept current", with(func(f *SessionConsumerFacts) { f.SourceReady = failing }), ConsumerPublish, metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, `ClusterM2MSession "fleet": refused`},
		{"source without a Ready yet", with(func(f *SessionConsumerFacts) { f.SourceReady = nil; f.HasData = false }), ConsumerKeep, metav1.ConditionFalse, v1alpha1.ReasonPending, "not reported Ready"},
		{"source Ready Unknown", with(func(f *SessionConsumerFacts) { f.SourceReady = unknown }), ConsumerPublish, metav1.ConditionFalse, v1alpha1.ReasonPending, "not reported Ready"},
		{"ready source whose Secret is not readable yet", with(func(f *SessionConsumerFacts) { f.HasData = false }), ConsumerKeep, metav1.ConditionFalse, v1alpha1.ReasonPending, "not readable yet"},
		{"failing source with no data", with(func(f *SessionConsumerFacts) { f.SourceReady = failing; f.HasData = false }), ConsumerKeep, metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, ""},
	}
	for _, c := range cases {
		d := DecideSessionConsumer(c.f)
		if d.Step != c.step || d.Ready != c.ready || d.Reason != c.reason || !strings.Contains(d.Message, c.msg) {
			t.Errorf("%s: got %+v; want step %d %s/%s containing %q", c.name, d, c.step, c.ready, c.reason, c.msg)
		}
	}
}
