package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// refuseStatusField makes the API server refuse every status write of the namespace's M2MSessions that
// changes status.<field>, with a ValidatingAdmissionPolicy. The returned function lifts it.
func (f *fixture) refuseStatusField(field string) (lift func()) {
	f.t.Helper()
	name := "refuse-" + f.ns
	expr := fmt.Sprintf("!has(object.status.%[1]s) || (has(oldObject.status.%[1]s) && oldObject.status.%[1]s == object.status.%[1]s)", field)
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
						Rule: admissionregistrationv1.Rule{APIGroups: []string{v1alpha1.GroupVersion.Group},
							APIVersions: []string{"*"}, Resources: []string{"m2msessions/status"}},
					},
				}},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{Name: "this-namespace",
				Expression: fmt.Sprintf("request.namespace == %q", f.ns)}},
			Validations: []admissionregistrationv1.Validation{{Expression: expr, Message: "test: this status write is refused"}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}},
	}
	must(f.t, k8s.Create(ctx, policy))
	must(f.t, k8s.Create(ctx, binding))
	lifted := false
	lift = func() {
		if !lifted {
			lifted = true
			_ = k8s.Delete(context.Background(), binding)
			_ = k8s.Delete(context.Background(), policy)
		}
	}
	f.t.Cleanup(lift)
	// The policy takes a moment to be enforced: probe with a dry-run write on an object of our own.
	probe := &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "probe"},
		Spec: v1alpha1.M2MSessionSpec{AppRef: &v1alpha1.LocalObjectReference{Name: "none"},
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: "none"}, SecretName: "probe-session",
			LogoutOnDelete: ptr.To(false)}}
	must(f.t, k8s.Create(ctx, probe))
	deadline := time.Now().Add(15 * time.Second)
	for {
		p := &v1alpha1.M2MSession{}
		must(f.t, k8s.Get(ctx, client.ObjectKeyFromObject(probe), p))
		orig := p.DeepCopy()
		switch field {
		case "passwordRotatedAt":
			p.Status.PasswordRotatedAt = timePtr(time.Now().Add(time.Duration(time.Now().UnixNano()%1000) * time.Second))
		case "lastLoginTime":
			p.Status.LastLoginTime = timePtr(time.Now().Add(time.Duration(time.Now().UnixNano()%1000) * time.Second))
		default:
			f.t.Fatalf("no probe for %s", field)
		}
		err := k8s.Status().Patch(ctx, p, client.MergeFrom(orig), client.DryRunAll)
		if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
			return lift
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the admission policy is not enforced after 15 s (last: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Issue 8 scenario 13: the password was reset and stored, the status patch recording it failed, and
// the next pass, deciding from the status it had before, reset the password again.
func TestScenario13FailedStatusPatchDoesNotRepeatAPasswordReset(t *testing.T) {
	f := m2mFixture(t, time.Hour)
	f.uws("uws", uwsUser, uwsPassword)
	lift := f.refuseStatusField("passwordRotatedAt")
	f.session("s", "uws", func(s *v1alpha1.M2MSession) {
		// Long enough that no second, scheduled reset falls into the test.
		s.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: 8 * time.Second}}
	})
	f.waitSession("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 10*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for f.sim.Stats().Count(resetRoute, 200) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no password reset")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The status write recording the reset is refused for a while.
	time.Sleep(2 * time.Second)
	lift()
	deadline = time.Now().Add(10 * time.Second)
	for f.getSession("s").Status.PasswordRotatedAt == nil {
		if time.Now().After(deadline) {
			t.Fatal("passwordRotatedAt never recorded after the refusal was lifted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := f.sim.Stats().Count(resetRoute, 200); n != 1 {
		t.Errorf("password resets = %d, want 1: a failed status write repeated the reset (all reset answers: %d; status %+v)", n, f.sim.Stats().Total(resetRoute), f.getSession("s").Status)
	}
	sec := &corev1.Secret{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "uws"}, sec))
	if info, _ := f.sim.M2MUser(uwsUser); string(sec.Data[v1alpha1.CredentialsKeyPassword]) != info.Password {
		t.Error("the credentials Secret does not hold the platform's password")
	}
}

// Issue 8 scenario 13, the login: the first login's status write is refused; the next pass, deciding
// from the status it had before, found the keep-alive "due" and logged in again at once.
func TestScenario13FailedStatusPatchDoesNotRepeatALogin(t *testing.T) {
	f := m2mFixture(t, time.Hour)
	f.uws("uws", uwsUser, uwsPassword)
	lift := f.refuseStatusField("lastLoginTime")
	f.session("s", "uws", func(s *v1alpha1.M2MSession) {
		// No account: each keep-alive is a login, and the next one is a whole interval away.
		s.Spec.KeepAlive = v1alpha1.KeepAliveSpec{Interval: &metav1.Duration{Duration: 10 * time.Second}}
	})
	deadline := time.Now().Add(15 * time.Second)
	for f.logins() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no login")
		}
		time.Sleep(20 * time.Millisecond)
	}
	first := time.Now()
	time.Sleep(1500 * time.Millisecond) // the status write recording the login is refused meanwhile
	lift()
	f.waitSession("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 8*time.Second)
	if time.Since(first) > 9*time.Second {
		t.Skipf("the status landed only after %v: too slow to tell a repeat from the next interval", time.Since(first))
	}
	if n := f.logins(); n != 1 {
		t.Errorf("logins = %d, want 1: a failed status write repeated the login", n)
	}
}
