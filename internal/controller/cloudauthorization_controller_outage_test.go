package controller

import (
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Issue 8 (the rule "an upstream answer that must be persisted is stored"), the code exchange: when the
// Secret cannot be written for longer than the callback's own retries, the exchanged tokens used to be
// dropped (a new authorization URL, a new consent). They wait in the process's memory instead, the
// reconciler stores them once writes work again, with that one exchange, and the browser is told the
// authorization was received. A ValidatingAdmissionPolicy (no webhook) refuses the Secret's writes.
func TestIssue8CodeExchangeAnswerSurvivesAStoreOutage(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	f.cloudAuth("photos")
	f.waitCloud("photos", v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending, 10*time.Second)
	u := f.waitURL("photos", "")
	restore := f.refuseSecretWrites("photos-grant")

	status, page := land(t, browserConsent(t, u))
	if f.cloudSecret("photos-grant") != nil {
		t.Fatal("the policy did not refuse the Secret write; the test proves nothing")
	}
	// Longer than the callback's retries: the reconciler keeps failing to write meanwhile.
	time.Sleep(3 * time.Second)
	ca := f.getCloud("photos")
	if c := meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status == metav1.ConditionTrue {
		t.Fatalf("Ready while the Secret holds no tokens: %+v", c)
	}
	if status != http.StatusAccepted || !strings.Contains(page, "received") {
		t.Errorf("callback answered %d: %s", status, page)
	}
	// The status says where the grant is, and asks for no new consent.
	ca = f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonGrantNotStored, 10*time.Second)
	if c := meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionAuthorized); c == nil || c.Reason != v1alpha1.ReasonGrantNotStored || ca.Status.ConsentStateHash != "" {
		t.Fatalf("Authorized %+v, consent offered %v while the tokens wait", c, ca.Status.ConsentStateHash != "")
	}
	restore()

	f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 30*time.Second)
	s := f.cloudSecret("photos-grant")
	if s == nil || !f.sim.ValidCloudAccessToken(string(s.Data[KeyAccessToken])) || len(s.Data[KeyRefreshToken]) == 0 {
		t.Fatal("the grant Secret does not hold the exchanged tokens")
	}
	f.checkPublished("photos")
	if got := f.sim.CloudStats(); got.CodeExchanges != 1 || got.CodeReuses != 0 || got.InvalidGrants != 0 {
		t.Fatalf("want exactly one code exchange: %+v", got)
	}
	ca = f.getCloud("photos")
	if c := meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionAuthorized); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("Authorized after the tokens landed: %+v", c)
	}
	if ca.Status.ConsentStateHash != "" {
		t.Fatal("a new consent is asked for although the grant was stored")
	}
	if f.cloudEvents("photos", v1alpha1.EventAuthorized) != 1 {
		t.Fatalf("%d Authorized events, want 1", f.cloudEvents("photos", v1alpha1.EventAuthorized))
	}
}

// refuseSecretWrites installs a policy refusing every create or update of the Secret name (and of a
// probe Secret) in the fixture's namespace, waits until it bites, and returns its removal, which waits
// until writes are admitted again.
func (f *fixture) refuseSecretWrites(name string) func() {
	return f.refuseSecretWritesUnless(name, "false")
}

// refuseSecretWritesUnless is refuseSecretWrites for the writes of Secret name for which the CEL
// expression allow (over object) is false.
func (f *fixture) refuseSecretWritesUnless(name, allow string) func() {
	f.t.Helper()
	probe := "probe-refused-" + name
	pol := "refuse-" + name + "-" + f.ns
	fail := admissionv1.Fail
	must(f.t, k8s.Create(ctx, &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: pol},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: "object.metadata.namespace != '" + f.ns + "' || (object.metadata.name != '" + name + "' || (" + allow + ")) && object.metadata.name != '" + probe + "'",
				Message:    "refused by the test",
			}},
		},
	}))
	must(f.t, k8s.Create(ctx, &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: pol},
		Spec:       admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: pol, ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny}},
	}))
	drop := func() {
		_ = k8s.Delete(ctx, &admissionv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: pol}})
		_ = k8s.Delete(ctx, &admissionv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: pol}})
	}
	f.t.Cleanup(drop)
	// admitted creates the probe Secret and deletes it again; it reports whether the create was let in.
	admitted := func() bool {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: probe}}
		if k8s.Create(ctx, s) != nil {
			return false
		}
		must(f.t, k8s.Delete(ctx, s))
		return true
	}
	waitFor := func(want bool, what string) {
		deadline := time.Now().Add(20 * time.Second)
		for admitted() != want {
			if time.Now().After(deadline) {
				f.t.Fatal(what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor(false, "the admission policy never took effect")
	return func() {
		drop()
		waitFor(true, "the admission policy never went away")
	}
}
