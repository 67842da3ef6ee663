package policy

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

func TestAdmit(t *testing.T) {
	team := map[string]string{"team": "iot"}
	bad := &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Near"}}}}
	cases := []struct {
		name    string
		a       *v1alpha1.AllowedNamespaces
		labels  map[string]string
		allowed bool
		msg     string
	}{
		{"named", &v1alpha1.AllowedNamespaces{Names: []string{"tenant"}}, nil, true, ""},
		{"labels match", &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchLabels: team}}, team, true, ""},
		{"namespace not known yet: names only", &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchLabels: team}}, nil, false,
			`ClusterThingSpaceApp "platform" does not allow namespace "tenant"`},
		{"unset", nil, team, false, `does not allow namespace "tenant" (its spec.allowedNamespaces); no Secret is written`},
		{"bad selector says why", bad, team, false, `allowedNamespaces.selector: `},
	}
	for _, c := range cases {
		got := Admit("ClusterThingSpaceApp", "platform", c.a, "tenant", c.labels)
		if got.Allowed != c.allowed || !strings.Contains(got.Message, c.msg) || (c.allowed && got.Message != "") {
			t.Errorf("%s: got %+v, want allowed %v and a message containing %q", c.name, got, c.allowed, c.msg)
		}
	}
}

func TestCountConsumers(t *testing.T) {
	yes, no := Admission{Allowed: true}, Admission{Message: "no"}
	cases := []struct {
		in   []Admission
		want v1alpha1.ConsumerStatus
	}{
		{nil, v1alpha1.ConsumerStatus{}},
		{[]Admission{yes, no, yes}, v1alpha1.ConsumerStatus{Consumers: 2, RefusedConsumers: 1}},
		{[]Admission{no}, v1alpha1.ConsumerStatus{RefusedConsumers: 1}},
	}
	for _, c := range cases {
		if got := CountConsumers(c.in); got != c.want {
			t.Errorf("%v: got %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestDecideConsumer(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tok := func(s string, exp time.Duration) AppToken { return AppToken{AccessToken: s, ExpiresAt: now.Add(exp)} }
	allowed, refused := Admission{Allowed: true}, Admission{Message: "not you"}
	cases := []struct {
		name    string
		in      ConsumerInput
		step    ConsumerStep
		token   AppToken
		ready   metav1.ConditionStatus
		reason  string
		msg     string
		nextSet bool
	}{
		{name: "publishes the cluster token", in: ConsumerInput{Found: true, Admission: allowed, Source: tok("A", time.Hour), SourceEnds: now.Add(time.Hour)},
			step: ConsumerPublish, token: tok("A", time.Hour), ready: metav1.ConditionTrue, reason: v1alpha1.ReasonTokenValid, msg: "valid until 2026-12-01T13:00:00Z", nextSet: true},
		{name: "status not written yet", in: ConsumerInput{Found: true, Admission: allowed, Source: tok("A", time.Hour)},
			step: ConsumerPublish, token: tok("A", time.Hour), ready: metav1.ConditionTrue, reason: v1alpha1.ReasonTokenValid, nextSet: true},
		{name: "status lags a rotation", in: ConsumerInput{Found: true, Admission: allowed, Source: tok("B", 2*time.Hour), SourceEnds: now.Add(time.Hour), Held: tok("A", time.Hour)},
			step: ConsumerPublish, token: tok("B", 2*time.Hour), ready: metav1.ConditionTrue, reason: v1alpha1.ReasonTokenValid, nextSet: true},
		{name: "not allowed deletes even a valid copy", in: ConsumerInput{Found: true, Admission: refused, Source: tok("A", time.Hour), Held: tok("A", time.Hour)},
			step: ConsumerDelete, ready: metav1.ConditionFalse, reason: v1alpha1.ReasonNotAllowed, msg: "not you"},
		{name: "cluster app gone keeps the copy", in: ConsumerInput{Kind: "ClusterThingSpaceApp", Name: "p", Admission: allowed, Held: tok("A", time.Hour)},
			step: ConsumerKeep, token: tok("A", time.Hour), ready: metav1.ConditionFalse, reason: v1alpha1.ReasonAppNotReady, msg: `ClusterThingSpaceApp "p" not found; the Secret keeps the last token copied until it expires at 2026-12-01T13:00:00Z`},
		{name: "source expired", in: ConsumerInput{Kind: "K", Name: "p", Found: true, Admission: allowed, Source: tok("A", 0), Held: tok("A", 0)},
			step: ConsumerKeep, token: tok("A", 0), ready: metav1.ConditionFalse, reason: v1alpha1.ReasonAppNotReady, msg: `K "p" holds no valid token`},
		{name: "source revoked (status ended it)", in: ConsumerInput{Found: true, Admission: allowed, Source: tok("A", time.Hour), SourceEnds: now, Held: tok("A", time.Hour)},
			step: ConsumerKeep, token: tok("A", time.Hour), ready: metav1.ConditionFalse, reason: v1alpha1.ReasonAppNotReady, msg: "holds no valid token; the Secret keeps"},
		// At the natural expiry the source renews; a Ready source is mirrored for the grace, so a rotation
		// does not flip the consumer's Ready (nor write its status twice).
		{name: "source renewing at expiry", in: ConsumerInput{Kind: "K", Name: "p", Found: true, Admission: allowed, SourceReady: true, Source: tok("A", 0), SourceEnds: now, Held: tok("A", 0)},
			step: ConsumerKeep, token: tok("A", 0), ready: metav1.ConditionTrue, reason: v1alpha1.ReasonTokenValid, msg: "valid until 2026-12-01T12:00:00Z", nextSet: true},
		{name: "source renewing past the grace", in: ConsumerInput{Found: true, Admission: allowed, SourceReady: true, Source: tok("A", -ConsumerRenewalGrace), Held: tok("A", -ConsumerRenewalGrace)},
			step: ConsumerKeep, token: tok("A", -ConsumerRenewalGrace), ready: metav1.ConditionFalse, reason: v1alpha1.ReasonAppNotReady},
		{name: "a Ready source does not hide a revoke", in: ConsumerInput{Found: true, Admission: allowed, SourceReady: true, Source: tok("A", time.Hour), SourceEnds: now, Held: tok("A", time.Hour)},
			step: ConsumerKeep, token: tok("A", time.Hour), ready: metav1.ConditionFalse, reason: v1alpha1.ReasonAppNotReady},
		{name: "source's new token ahead of its status", in: ConsumerInput{Found: true, Admission: allowed, SourceReady: true, Source: tok("B", time.Hour), SourceEnds: now, Held: tok("A", 0)},
			step: ConsumerKeep, token: tok("A", 0), ready: metav1.ConditionTrue, reason: v1alpha1.ReasonTokenValid, nextSet: true},
		{name: "a source not Ready is not mirrored at expiry", in: ConsumerInput{Found: true, Admission: allowed, Source: tok("A", 0), SourceEnds: now, Held: tok("A", 0)},
			step: ConsumerKeep, token: tok("A", 0), ready: metav1.ConditionFalse, reason: v1alpha1.ReasonAppNotReady},
		{name: "no token anywhere", in: ConsumerInput{Found: true, Admission: allowed},
			step: ConsumerKeep, ready: metav1.ConditionFalse, reason: v1alpha1.ReasonAppNotReady},
	}
	for _, c := range cases {
		c.in.Now = now
		d := DecideConsumer(c.in)
		if d.Step != c.step || d.Token != c.token || d.Ready != c.ready || d.Reason != c.reason || !strings.Contains(d.Message, c.msg) || d.Next.IsZero() == c.nextSet {
			t.Errorf("%s: got %+v", c.name, d)
		}
		if !c.in.Held.ValidAt(now) && strings.Contains(d.Message, "keeps") {
			t.Errorf("%s: the message promises an expired token: %q", c.name, d.Message)
		}
	}
}
