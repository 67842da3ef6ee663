package controller

import (
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Issue 8 scenario 13: the outcome of a side effect was remembered only after the status patch that
// records it succeeded; when the patch failed, the next pass repeated it: a manual refresh revoked the
// brand-new token. A ValidatingAdmissionPolicy (no webhook) refuses the status write that records the
// request while the test wants it to fail.
func TestScenario13FailedStatusWriteDoesNotRepeatTheRevoke(t *testing.T) {
	f := newFixtureWith(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	f.app("app", "creds")
	f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	const value = "s13"
	drop := f.refuseStatusRecording(value)

	f.requestRefresh("app", value)
	time.Sleep(3 * time.Second) // the operator retries the refused write with its error backoff meanwhile
	if got := f.get("app").Status.ObservedRefreshRequest; got == value {
		t.Fatal("the policy did not refuse the status write; the test proves nothing")
	}
	if r := f.revokeCalls(); r != 1 {
		t.Fatalf("%d revokes for one refresh request while the status write failed", r)
	}
	drop()
	deadline := time.Now().Add(10 * time.Second)
	for f.get("app").Status.ObservedRefreshRequest != value {
		if time.Now().After(deadline) {
			t.Fatal("the owed status write never landed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r, tc := f.revokeCalls(), f.tokenCalls(); r != 1 || tc != 2 {
		t.Fatalf("revokes = %d, token calls = %d; want 1 and 2", r, tc)
	}
	if tok, _, _ := f.token("app-token"); !f.sim.ValidBearer(tok) {
		t.Fatal("the Secret's token is not valid")
	}
}

// refuseStatusRecording installs a policy refusing any ThingSpaceApp status write in the fixture's
// namespace that sets observedRefreshRequest to value, waits until it bites, and returns its removal.
func (f *fixture) refuseStatusRecording(value string) func() {
	f.t.Helper()
	name := "refuse-" + f.ns
	fail := admissionv1.Fail
	pol := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Update},
					Rule: admissionv1.Rule{APIGroups: []string{v1alpha1.GroupVersion.Group}, APIVersions: []string{"*"},
						Resources: []string{"thingspaceapps/status"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: "object.metadata.namespace != '" + f.ns + "' || !has(object.status.observedRefreshRequest) || object.status.observedRefreshRequest != '" + value + "'",
				Message:    "refused by the test",
			}},
		},
	}
	bind := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: name, ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny}},
	}
	must(f.t, k8s.Create(ctx, pol))
	must(f.t, k8s.Create(ctx, bind))
	drop := func() { _ = k8s.Delete(ctx, bind); _ = k8s.Delete(ctx, pol) }
	f.t.Cleanup(drop)

	// A probe the operator cannot serve (no credentials): the test writes its status until refused.
	f.app("probe", "absent")
	f.waitReady("probe", metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound, 10*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := f.get("probe")
		orig := p.DeepCopy()
		p.Status.ObservedRefreshRequest = value
		if err := k8s.Status().Patch(ctx, p, client.MergeFrom(orig)); err != nil {
			break
		}
		p2 := f.get("probe")
		orig = p2.DeepCopy()
		p2.Status.ObservedRefreshRequest = ""
		_ = k8s.Status().Patch(ctx, p2, client.MergeFrom(orig))
		if time.Now().After(deadline) {
			f.t.Fatal("the admission policy never took effect")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return func() {
		drop()
		// Wait until writes are admitted again.
		deadline := time.Now().Add(20 * time.Second)
		for {
			p := f.get("probe")
			orig := p.DeepCopy()
			p.Status.ObservedRefreshRequest = value
			if k8s.Status().Patch(ctx, p, client.MergeFrom(orig)) == nil {
				return
			}
			if time.Now().After(deadline) {
				f.t.Fatal("the admission policy never went away")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
