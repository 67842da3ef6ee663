package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// TestM2MAppRotationReachesTheSessionSecret: every rotation of the app's token reaches the session
// Secret's access_token (and its expiry) within m2mFollowWithin of the app's Secret changing, at no
// cost in logins.
func TestM2MAppRotationReachesTheSessionSecret(t *testing.T) {
	t.Parallel()
	const rotations = 3
	user, pw := "rotation-uws", uwsPassword()
	env := newM2MEnv(t, lifetime.String(), m2mIdle, map[string]string{user: pw})
	ns, sim := env.ns, env.sim
	createUWS(t, ns, "uws", user, pw)
	newSession(t, ns, "s", "uws")
	waitSessionReady(t, ns, "s")
	session := readSession(t, ns, "s-session").SessionToken

	appTok, _ := readToken(t, ns, "app-token")
	appChanged := time.Time{} // when the app's Secret was first seen with a token the session Secret lacks
	seen := 0
	deadline := time.Now().Add(time.Duration(rotations+2) * lifetime)
	for seen < rotations {
		now := time.Now()
		if now.After(deadline) {
			t.Fatalf("saw %d app rotations reach the session Secret in %v, want %d", seen, time.Duration(rotations+2)*lifetime, rotations)
		}
		tok, exp, err := harness.ReadToken(t.Context(), k8s, ns, "app-token")
		if err != nil {
			t.Fatal(err)
		}
		sensitive.Add("a token", tok)
		if tok != appTok {
			appTok, appChanged = tok, now
		}
		ss := readSession(t, ns, "s-session")
		if ss.SessionToken != session {
			t.Fatalf("the session changed with an app rotation")
		}
		if !appChanged.IsZero() {
			if ss.AccessToken == appTok {
				seen++
				t.Logf("rotation %d: the session Secret carries the app's new token %v after the app's Secret was seen changing (polled every 20ms)",
					seen, now.Sub(appChanged).Round(time.Millisecond))
				if !ss.AccessTokenExpiresAt.Equal(exp) {
					t.Errorf("rotation %d: access_token_expires_at %v, want the app's %v", seen, ss.AccessTokenExpiresAt, exp)
				}
				appChanged = time.Time{}
			} else if lag := now.Sub(appChanged); lag > m2mFollowWithin {
				t.Fatalf("rotation %d: the session Secret still lacks the app's new token %v after the app's Secret changed; status: %s",
					seen+1, lag.Round(10*time.Millisecond), describeSession(getSession(t, ns, "s")))
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := calls(t, sim, harness.RouteM2MLogin, 0); n != 1 {
		t.Errorf("%d logins over %d app rotations, want 1: %v", n, rotations, stats(t, sim))
	}
	waitSessionCondition(t, ns, "s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 2*time.Second)
	if err := sessionAccepted(t, sim, readSession(t, ns, "s-session")); err != nil {
		t.Errorf("the simulator does not accept the session with the Secret's Bearer: %v", err)
	}
}

// TestM2MPasswordRotationSurvivesRefusedWrites: a password reset whose new password the API server
// refuses to store for a while (a ValidatingAdmissionPolicy denying UPDATEs of the credentials
// Secret) is stored once writes are allowed again: the credentials Secret then holds exactly the
// platform's password, the session still works and the user can log in with it.
func TestM2MPasswordRotationSurvivesRefusedWrites(t *testing.T) {
	t.Parallel()
	const (
		rotateEvery = 8 * time.Second
		// refusal is how long writes stay refused after the reset happened.
		refusal = 3 * time.Second
	)
	user, p0 := "rotate-uws", uwsPassword()
	env := newM2MEnv(t, longLifetime, time.Minute, map[string]string{user: p0})
	ns, sim := env.ns, env.sim
	createUWS(t, ns, "uws", user, p0)

	lift := refuseSecretUpdates(t, ns, "uws")
	// The policy must really refuse an update of that Secret, and only of that one: a dry run goes
	// through admission without writing.
	probe := func(name string) error {
		s := &corev1.Secret{}
		if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
			t.Fatal(err)
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations["e2e.credops.io/probe"] = randHex(6)
		return k8s.Update(t.Context(), s, client.DryRunAll)
	}
	var refused error
	err := harness.WaitFor(t.Context(), 20*time.Second, 100*time.Millisecond, func() (bool, error) {
		refused = probe("uws")
		return refused != nil, nil
	})
	if err != nil {
		t.Fatalf("the admission policy never refused an update of the credentials Secret: %v", err)
	}
	if !apierrors.IsInvalid(refused) && !apierrors.IsForbidden(refused) {
		t.Fatalf("update of the credentials Secret refused with an unexpected error: %v", refused)
	}
	t.Logf("the API server refuses updates of the credentials Secret: %v", refused)
	if err := probe("app-creds"); err != nil {
		t.Fatalf("the admission policy also refuses another Secret's update: %v", err)
	}

	newSession(t, ns, "s", "uws", func(s *v1alpha1.M2MSession) {
		s.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: rotateEvery}}
	})
	created := getSession(t, ns, "s").CreationTimestamp.Time
	waitSessionReady(t, ns, "s")
	session := readSession(t, ns, "s-session")

	// The reset happens upstream while the new password cannot be stored.
	var p1 string
	err = harness.WaitFor(t.Context(), rotateEvery+15*time.Second, 50*time.Millisecond, func() (bool, error) {
		p1 = m2mUser(t, sim, user).Password
		return p1 != p0, nil
	})
	if err != nil {
		t.Fatalf("no password reset: %v; status: %s", err, describeSession(getSession(t, ns, "s")))
	}
	reset := time.Now()
	t.Logf("password reset upstream %v after the session was created (interval %v)", reset.Sub(created).Round(100*time.Millisecond), rotateEvery)
	sawNotStored := false
	for time.Since(reset) < refusal {
		if got := uwsPasswordIn(t, ns, "uws"); got != p0 {
			t.Fatalf("the credentials Secret changed while updates were refused")
		}
		if _, reason := harness.SessionReady(getSession(t, ns, "s")); reason == v1alpha1.ReasonPasswordNotStored {
			sawNotStored = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("updates refused for %v after the reset; Ready=False %s seen meanwhile: %v", refusal, v1alpha1.ReasonPasswordNotStored, sawNotStored)
	if n := calls(t, sim, harness.RouteM2MLogin, 0); n != 1 {
		t.Errorf("%d logins while the new password could not be stored, want 1 (the old password is dead)", n)
	}

	lift()
	lifted := time.Now()
	var stored string
	err = harness.WaitFor(t.Context(), 20*time.Second, 50*time.Millisecond, func() (bool, error) {
		stored = uwsPasswordIn(t, ns, "uws")
		return stored != p0 && stored == m2mUser(t, sim, user).Password, nil
	})
	if err != nil {
		t.Fatalf("the credentials Secret does not hold the platform's password %v after writes were allowed again: %v; status: %s",
			time.Since(lifted).Round(10*time.Millisecond), err, describeSession(getSession(t, ns, "s")))
	}
	t.Logf("the new password was in the credentials Secret %v after writes were allowed again", time.Since(lifted).Round(10*time.Millisecond))
	s := waitSessionCondition(t, ns, "s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid, 10*time.Second)
	if s.Status.PasswordRotatedAt == nil {
		t.Errorf("status.passwordRotatedAt is not set")
	}

	// One reset for one due rotation: storing the password late must not reset it again. (The next
	// rotation is due rotateEvery after the first.)
	resetDue := created.Add(rotateEvery)
	if quiet := time.Until(resetDue.Add(rotateEvery - time.Second)); quiet > 0 {
		time.Sleep(min(quiet, 2*time.Second))
	}
	if time.Now().Before(resetDue.Add(rotateEvery - 500*time.Millisecond)) {
		if n := calls(t, sim, harness.RouteM2MReset, 0); n != 1 {
			t.Errorf("%d password resets for one due rotation, want 1: %v", n, stats(t, sim))
		}
	}
	if stored != p1 {
		t.Logf("note: the credentials Secret holds a password from a later reset than the one made during the refusal")
	}

	// Exactly the platform's password, a working session, and a login that works with the stored password.
	final := m2mUser(t, sim, user)
	if got := uwsPasswordIn(t, ns, "uws"); got != final.Password {
		t.Errorf("the credentials Secret does not hold the platform's current password")
	}
	if final.Locked || final.ConsecutiveFailures != 0 {
		t.Errorf("simulator user: locked=%v, %d consecutive failures; want neither", final.Locked, final.ConsecutiveFailures)
	}
	now := readSession(t, ns, "s-session")
	if now.SessionToken != session.SessionToken {
		t.Logf("note: the session was replaced during the rotation (%d logins)", calls(t, sim, harness.RouteM2MLogin, 0))
	}
	if err := sessionAccepted(t, sim, now); err != nil {
		t.Errorf("the simulator does not accept the session in the Secret after the rotation: %v", err)
	}
	other, err := sim.M2MLogin(t.Context(), now.AccessToken, user, uwsPasswordIn(t, ns, "uws"))
	if err != nil {
		t.Fatalf("logging in with the stored password: %v", err)
	}
	sensitive.Add("a session token", other)
	if err := sim.M2MLogout(t.Context(), now.AccessToken, other); err != nil {
		t.Errorf("logging the test's own session out: %v", err)
	}
}

// refuseSecretUpdates makes the API server refuse every UPDATE of the Secret ns/name with a
// ValidatingAdmissionPolicy whose only validation is `false`, narrowed to that one Secret three ways
// (namespace selector, resource name, match condition). The returned function lifts the refusal
// (deleting the binding and the policy); it is also called at cleanup.
func refuseSecretUpdates(t *testing.T, ns, name string) (lift func()) {
	t.Helper()
	policyName := "e2e-refuse-" + ns
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: policyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					ResourceNames: []string{name},
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
						Rule: admissionregistrationv1.Rule{
							APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"},
						},
					},
				}},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "only-this-secret",
				Expression: fmt.Sprintf("request.namespace == %q && request.name == %q", ns, name),
			}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "false",
				Message:    "e2e: updates of this Secret are refused for a while",
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policyName,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	if err := k8s.Create(t.Context(), policy); err != nil {
		t.Fatalf("create ValidatingAdmissionPolicy: %v", err)
	}
	lifted := false
	lift = func() {
		if lifted {
			return
		}
		lifted = true
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, o := range []client.Object{binding, policy} {
			if err := k8s.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete %T %s: %v", o, o.GetName(), err)
			}
		}
	}
	t.Cleanup(lift)
	if err := k8s.Create(t.Context(), binding); err != nil {
		t.Fatalf("create ValidatingAdmissionPolicyBinding: %v", err)
	}
	return lift
}

// TestM2MLogoutOnDelete: deleting an M2MSession logs its session out once (the finalizer holds the
// object until then); with logoutOnDelete false there is no finalizer and no logout.
func TestM2MLogoutOnDelete(t *testing.T) {
	t.Parallel()
	user, pw := "logout-uws", uwsPassword()
	env := newM2MEnv(t, longLifetime, m2mIdle, map[string]string{user: pw})
	ns, sim := env.ns, env.sim
	createUWS(t, ns, "uws", user, pw)
	newSession(t, ns, "s", "uws")
	newSession(t, ns, "keep", "uws", func(s *v1alpha1.M2MSession) { s.Spec.LogoutOnDelete = ptr.To(false) })
	s := waitSession(t, ns, "s", 30*time.Second, "the finalizer and Ready", func(s *v1alpha1.M2MSession) bool {
		ready, _ := harness.SessionReady(s)
		return ready && controllerutil.ContainsFinalizer(s, v1alpha1.LogoutFinalizer)
	})
	keep := waitSessionReady(t, ns, "keep")
	if len(keep.Finalizers) != 0 {
		t.Errorf("finalizers with logoutOnDelete false = %v, want none", keep.Finalizers)
	}
	ended := readSession(t, ns, "s-session")
	kept := readSession(t, ns, "keep-session")
	if n := activeSessions(t, sim); n != 2 {
		t.Fatalf("%d live sessions upstream, want 2", n)
	}
	if n := calls(t, sim, harness.RouteM2MLogout, 0); n != 0 {
		t.Fatalf("logouts before deletion = %d, want 0", n)
	}

	for _, obj := range []*v1alpha1.M2MSession{s, keep} {
		if err := k8s.Delete(t.Context(), obj); err != nil {
			t.Fatalf("delete %s: %v", obj.Name, err)
		}
	}
	deleted := time.Now()
	for _, name := range []string{"s", "keep"} {
		err := harness.WaitFor(t.Context(), 20*time.Second, 50*time.Millisecond, func() (bool, error) {
			err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, &v1alpha1.M2MSession{})
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		})
		if err != nil {
			o := &v1alpha1.M2MSession{}
			_ = k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, o)
			t.Fatalf("%s was not deleted: %v; finalizers %v, status %s", name, err, o.Finalizers, describeSession(o))
		}
	}
	t.Logf("both sessions gone %v after deletion", time.Since(deleted).Round(10*time.Millisecond))
	if n, ok := calls(t, sim, harness.RouteM2MLogout, 0), calls(t, sim, harness.RouteM2MLogout, 200); n != 1 || ok != 1 {
		t.Errorf("logouts = %v, want exactly one, answered 200", stats(t, sim))
	}
	if n := activeSessions(t, sim); n != 1 {
		t.Errorf("%d live sessions upstream after the deletions, want 1 (the one not logged out)", n)
	}
	var m2mErr *harness.M2MError
	if err := sessionAccepted(t, sim, ended); !errors.As(err, &m2mErr) || !strings.Contains(m2mErr.Code, ".SessionToken.") {
		t.Errorf("the deleted session's token is still usable upstream (or failed oddly: %v): it was not logged out", err)
	}
	if err := sessionAccepted(t, sim, kept); err != nil {
		t.Errorf("the session deleted without logout no longer works: %v", err)
	}
}
