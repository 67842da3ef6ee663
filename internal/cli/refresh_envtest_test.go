package cli

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// operator plays the controller's part in a refresh: it watches obj (by polling) for a refresh-requested
// value not yet in status.observedRefreshRequest and, once delay has passed, writes the status the
// real controller writes after acting on it: the value as observed, Ready, and a new expiry.
type operator struct {
	key   types.NamespacedName
	k     kind
	delay time.Duration
	// ready is the Ready condition status written with the outcome, reason its reason when not True
	// (default CredentialsRejected).
	ready  metav1.ConditionStatus
	reason string
	// acted is the request value acted on, once it was.
	mu    sync.Mutex
	acted string
}

func (o *operator) run(ctx context.Context, t *testing.T) {
	var seen time.Time
	for ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		obj := o.k.newObj()
		if err := cp.Client.Get(ctx, o.key, obj); err != nil {
			continue
		}
		row, _ := RowOf(obj)
		v := obj.GetAnnotations()[v1alpha1.RefreshRequestedAnnotation]
		if v == "" || v == row.observedRefresh {
			continue
		}
		if seen.IsZero() {
			seen = time.Now()
		}
		if time.Since(seen) < o.delay {
			continue
		}
		o.writeOutcome(obj, v)
		if err := cp.Client.Status().Update(ctx, obj); err != nil {
			t.Logf("operator: %v (retrying)", err)
			continue
		}
		o.mu.Lock()
		o.acted = v
		o.mu.Unlock()
		return
	}
}

// writeOutcome sets the fields each controller sets: observedRefreshRequest where that kind keeps it,
// Ready, and the new expiry (renewal plan) or, for a session, the new login.
func (o *operator) writeOutcome(obj client.Object, value string) {
	n := metav1.Now()
	reason, msg := "TokenValid", "A new token is in the Secret"
	switch {
	case o.ready != metav1.ConditionTrue && o.reason != "":
		reason, msg = o.reason, "A person must open the consent link"
	case o.ready != metav1.ConditionTrue:
		reason, msg = "CredentialsRejected", "The upstream rejected the credentials (401 invalid_client)"
	}
	ready := metav1.Condition{Type: "Ready", Status: o.ready, Reason: reason, Message: msg}
	refreshed := v1alpha1.RefreshStatus{ObservedRefreshRequest: value, LastRefreshTime: &n,
		ExpiresAt: ptr(metav1.NewTime(n.Add(time.Hour))), RenewalTime: ptr(metav1.NewTime(n.Add(40 * time.Minute)))}
	switch x := obj.(type) {
	case *v1alpha1.ThingSpaceApp:
		x.Status.RefreshStatus = refreshed
		meta.SetStatusCondition(&x.Status.Conditions, ready)
	case *v1alpha1.CloudAuthorization:
		x.Status.RefreshStatus = refreshed
		meta.SetStatusCondition(&x.Status.Conditions, ready)
	case *v1alpha1.M2MSession:
		x.Status.ObservedRefreshRequest, x.Status.LastLoginTime = value, &n
		x.Status.NextKeepAliveTime = ptr(metav1.NewTime(n.Add(10 * time.Minute)))
		ready.Reason = "SessionValid"
		meta.SetStatusCondition(&x.Status.Conditions, ready)
	}
}

func (o *operator) actedOn() string { o.mu.Lock(); defer o.mu.Unlock(); return o.acted }

// refreshFixture creates one object of each kind, Ready with an old expiry and an older request observed.
func refreshFixture(t *testing.T) (string, string) {
	ns := newNamespace(t, "refresh")
	old := v1alpha1.RefreshStatus{ObservedRefreshRequest: "2026-01-01T00:00:00Z", ExpiresAt: ptr(metav1.NewTime(time.Now().Add(5 * time.Minute)))}
	ready := []metav1.Condition{{Type: "Ready", Status: "True", Reason: "TokenValid", Message: "valid", LastTransitionTime: metav1.Now()}}
	create(t, newApp(ns, "app", nil, v1alpha1.ThingSpaceAppStatus{Conditions: ready, RefreshStatus: old}))
	create(t, newM2M(ns, "session", nil, v1alpha1.M2MSessionStatus{Conditions: ready, ObservedRefreshRequest: old.ObservedRefreshRequest}))
	create(t, newCloud(ns, "cloud", nil, v1alpha1.CloudAuthorizationStatus{Conditions: ready, RefreshStatus: old}))
	return ns, kubeconfig(t, ns, "")
}

func TestRefreshWaitsForTheOperator(t *testing.T) {
	ns, kc := refreshFixture(t)
	for _, tc := range []struct {
		target, kind, name string
		expiry             bool
	}{
		{"tsapp/app", "ThingSpaceApp", "app", true},
		{"M2M/session", "M2MSession", "session", false},
		{"CloudAuthorization/cloud", "CloudAuthorization", "cloud", true},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			k, _ := parseKind(tc.kind)
			op := &operator{key: types.NamespacedName{Namespace: ns, Name: tc.name}, k: k, delay: 700 * time.Millisecond, ready: "True"}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go op.run(ctx, t)
			start := time.Now()
			got := run(t, clock.RealClock{}, Env{}, "--kubeconfig", kc, "refresh", tc.target, "--timeout", "20s")
			took := time.Since(start)
			if got.code != ExitOK || got.err != "" {
				t.Fatalf("exit %d\n%s%s", got.code, got.out, got.err)
			}
			value := op.actedOn()
			if value == "" || took < 700*time.Millisecond {
				t.Fatalf("returned after %v without waiting for the operator (acted on %q)", took, value)
			}
			at, err := time.Parse(time.RFC3339, value)
			if err != nil || at.Before(start.Add(-time.Second).Truncate(time.Second)) || at.After(time.Now()) {
				t.Errorf("request value %q is not RFC 3339 now (%v)", value, err)
			}
			for _, want := range []string{
				tc.kind + " " + ns + "/" + tc.name + ": refresh requested (thingspace.credops.io/refresh-requested=" + value + ")",
				"the operator acted on the refresh: Ready=True",
			} {
				if !strings.Contains(got.out, want) {
					t.Errorf("output lacks %q:\n%s", want, got.out)
				}
			}
			// The outcome is the status the operator wrote: the new expiry, or the session's next keep-alive.
			obj := k.newObj()
			if err := cp.Client.Get(ctx, op.key, obj); err != nil {
				t.Fatal(err)
			}
			row, _ := RowOf(obj)
			line := "next renewal: in 9m"
			if tc.expiry {
				line = "expires:      in 59m"
			}
			when := row.NextRenewal
			if tc.expiry {
				when = row.ExpiresAt
			}
			if !strings.Contains(got.out, line) || !strings.Contains(got.out, "("+when.Format(time.RFC3339)+")") {
				t.Errorf("output lacks %q at %v:\n%s", line, when, got.out)
			}
			t.Logf("kubectl thingspace refresh %s\n%s", tc.target, got.out)
		})
	}
}

func TestRefreshNotReadyAfterwards(t *testing.T) {
	ns, kc := refreshFixture(t)
	k, _ := parseKind("tsapp")
	op := &operator{key: types.NamespacedName{Namespace: ns, Name: "app"}, k: k, ready: "False"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go op.run(ctx, t)
	got := run(t, clock.RealClock{}, Env{}, "--kubeconfig", kc, "refresh", "thingspaceapp/app")
	if got.code != ExitFailure || !strings.Contains(got.out, "Ready=False (CredentialsRejected)") ||
		!strings.Contains(got.err, "ThingSpaceApp "+ns+"/app is not Ready after the refresh: Ready=False (CredentialsRejected): The upstream rejected") {
		t.Errorf("exit %d\n%s%s", got.code, got.out, got.err)
	}
}

// A CloudAuthorization waiting for consent records the request as moot: refresh says who must act.
func TestRefreshAwaitingConsent(t *testing.T) {
	ns, kc := refreshFixture(t)
	k, _ := parseKind("cloudauth")
	op := &operator{key: types.NamespacedName{Namespace: ns, Name: "cloud"}, k: k, ready: "False", reason: "AuthorizationPending"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go op.run(ctx, t)
	got := run(t, clock.RealClock{}, Env{}, "--kubeconfig", kc, "refresh", "cloudauth/cloud")
	if got.code != ExitFailure || !strings.HasSuffix(got.err, "Ready=False (AuthorizationPending): A person must open the consent link; a person must consent first: kubectl thingspace consent cloud -n "+ns+"\n") {
		t.Errorf("exit %d\n%s%s", got.code, got.out, got.err)
	}
}

func TestRefreshTimesOut(t *testing.T) {
	ns, kc := refreshFixture(t)
	start := time.Now()
	got := run(t, clock.RealClock{}, Env{}, "--kubeconfig", kc, "refresh", "cloudauth/cloud", "--timeout", "1s")
	took := time.Since(start)
	if got.code != ExitFailure || !strings.Contains(got.err, "timed out after 1s: the operator has not acted on refresh request") ||
		!strings.Contains(got.err, `(status.observedRefreshRequest is "2026-01-01T00:00:00Z"; Ready=True: valid)`) || !strings.Contains(got.err, "Is the operator running?") {
		t.Errorf("exit %d\n%s%s", got.code, got.out, got.err)
	}
	t.Logf("kubectl thingspace refresh cloudauth/cloud --timeout 1s\n%s%s", got.out, got.err)
	if took < time.Second || took > 15*time.Second { // not the 60s default; 2 shared cores may be slow
		t.Errorf("gave up after %v, want about 1s", took)
	}
	// The request stays on the object for the operator to act on later.
	var ca v1alpha1.CloudAuthorization
	if err := cp.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "cloud"}, &ca); err != nil {
		t.Fatal(err)
	}
	if v := ca.Annotations[v1alpha1.RefreshRequestedAnnotation]; v == "" || !strings.Contains(got.out, v) {
		t.Errorf("annotation %q not set, or not the one printed:\n%s", v, got.out)
	}
}

func TestRefreshWithoutWaiting(t *testing.T) {
	ns, kc := refreshFixture(t)
	got := run(t, clock.RealClock{}, Env{}, "--kubeconfig", kc, "refresh", "m2msession/session", "--wait=false")
	var s v1alpha1.M2MSession
	if err := cp.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "session"}, &s); err != nil {
		t.Fatal(err)
	}
	v := s.Annotations[v1alpha1.RefreshRequestedAnnotation]
	if got.code != ExitOK || v == "" || got.out != "M2MSession "+ns+"/session: refresh requested (thingspace.credops.io/refresh-requested="+v+")\n" {
		t.Errorf("exit %d, annotation %q\n%s%s", got.code, v, got.out, got.err)
	}
	// A second request in the same second is still a new value (the operator acts only on new ones).
	again := run(t, clock.RealClock{}, Env{}, "--kubeconfig", kc, "refresh", "m2m/session", "--wait=false")
	if err := cp.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "session"}, &s); err != nil {
		t.Fatal(err)
	}
	if again.code != ExitOK || s.Annotations[v1alpha1.RefreshRequestedAnnotation] == v {
		t.Errorf("second request kept %q: exit %d %s", v, again.code, again.err)
	}
}

func TestRefreshErrors(t *testing.T) {
	ns, kc := refreshFixture(t)
	got := run(t, clock.RealClock{}, Env{}, "--kubeconfig", kc, "refresh", "tsapp/nope")
	if got.code != ExitFailure || got.err != "error: ThingSpaceApp nope not found in namespace \""+ns+"\"\n" {
		t.Errorf("not found: exit %d %q", got.code, got.err)
	}
	viewer := viewerKubeconfig(t, ns)
	got = run(t, clock.RealClock{}, Env{}, "--kubeconfig", viewer, "-n", ns, "refresh", "tsapp/app")
	if got.code != ExitFailure || !strings.Contains(got.err, `forbidden: you may not get thingspaceapps.thingspace.credops.io in namespace "`+ns+`"`) {
		t.Errorf("viewer: exit %d %q", got.code, got.err)
	}
}
