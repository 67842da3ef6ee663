package gitops

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
	"github.com/credops/thingspace-operator/test/harness"
)

// What kstatus (Flux's health check) computes for each state, on the live object. The condition
// summaries are checked too, so a verdict that is right for the wrong reason fails.

const kindApp, kindSession, kindCloud = "ThingSpaceApp", "M2MSession", "CloudAuthorization"

func TestKstatusThingSpaceApp(t *testing.T) {
	e := newEnv(t, "kstatus-app")

	// Before the operator's first pass: the schema's observedGeneration 0 is behind generation 1.
	e.halt()
	e.app(t, "fleet", appSecret)
	res, _ := e.compute(t, kindApp, "fleet")
	wantResult(t, res, status.InProgressStatus, "LatestGenerationNotObserved")
	e.start(t)
	_, u := e.waitStatus(t, kindApp, "fleet", status.CurrentStatus)
	wantConditions(t, u, "Ready=True/TokenValid")
	wantObserved(t, u)

	// Right after a spec change, before the operator acted on it, then once it has.
	e.halt()
	specChange(t, e, &v1alpha1.ThingSpaceApp{}, "fleet", func(o client.Object) { o.(*v1alpha1.ThingSpaceApp).Spec.Scope = "m2m" })
	res, _ = e.compute(t, kindApp, "fleet")
	wantResult(t, res, status.InProgressStatus, "LatestGenerationNotObserved")
	e.start(t)
	_, u = e.waitStatus(t, kindApp, "fleet", status.CurrentStatus)
	wantConditions(t, u, "Ready=True/TokenValid")
	wantObserved(t, u)

	// A refresh a person asks for is routine: no Reconciling, Ready stays True throughout.
	requested := time.Now().UTC().Format(time.RFC3339Nano)
	app := &v1alpha1.ThingSpaceApp{}
	must(t, cp.Client.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: "fleet"}, app))
	orig := app.DeepCopy()
	app.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: requested}
	must(t, cp.Client.Patch(context.Background(), app, client.MergeFrom(orig)))
	must(t, harness.WaitFor(context.Background(), 30*time.Second, 20*time.Millisecond, func() (bool, error) {
		res, u := e.compute(t, kindApp, "fleet")
		if res.Status != status.CurrentStatus {
			t.Fatalf("a requested refresh made kstatus say %s (%s)", res.Status, res.Message)
		}
		v, _, _ := unstructured.NestedString(u.Object, "status", "observedRefreshRequest")
		return v == requested, nil
	}))

	// Credentials the upstream rejects: Failed at once, with the reason; Current again once fixed.
	e.app(t, "rejected", "Wr0ng-secret")
	res, u = e.waitStatus(t, kindApp, "rejected", status.FailedStatus)
	wantConditions(t, u, "Ready=False/CredentialsRejected", "Stalled=True/CredentialsRejected")
	if res.Message == "" {
		t.Error("Failed without a message")
	}
	wantObserved(t, u)
	fixSecret(t, e, "rejected-credentials", v1alpha1.CredentialsKeySecret, appSecret)
	_, u = e.waitStatus(t, kindApp, "rejected", status.CurrentStatus)
	wantConditions(t, u, "Ready=True/TokenValid")

	// A credentials Secret not there yet (a GitOps sync creates it a moment later): InProgress.
	e.app(t, "early", "")
	e.waitStatus(t, kindApp, "early", status.InProgressStatus)
	waitConditions(t, e, kindApp, "early", "Ready=False/CredentialsNotFound", "Reconciling=True/CredentialsNotFound")
	wantObserved(t, e.live(t, kindApp, "early"))
	e.secret(t, "early-credentials", map[string]string{v1alpha1.CredentialsKeyKey: appKey, v1alpha1.CredentialsKeySecret: appSecret})
	_, u = e.waitStatus(t, kindApp, "early", status.CurrentStatus)
	wantConditions(t, u, "Ready=True/TokenValid")
}

// A transient failure is never Failed: a new object is InProgress (Reconciling) through an outage.
func TestKstatusOutageIsInProgress(t *testing.T) {
	e := newEnv(t, "kstatus-outage")
	e.sim.SetFaults(simulator.Faults{Rate: 1, Status: 503})
	e.app(t, "fleet", appSecret)
	waitConditions(t, e, kindApp, "fleet", "Ready=False/UpstreamUnavailable", "Reconciling=True/UpstreamUnavailable")
	deadline := time.Now().Add(3 * time.Second) // a few retries (backoff 1 s, 2 s)
	for time.Now().Before(deadline) {
		if res, _ := e.compute(t, kindApp, "fleet"); res.Status != status.InProgressStatus {
			t.Fatalf("during an outage kstatus said %s (%s)", res.Status, res.Message)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.sim.SetFaults(simulator.Faults{})
	_, u := e.waitStatus(t, kindApp, "fleet", status.CurrentStatus)
	wantConditions(t, u, "Ready=True/TokenValid")
}

// wantResult checks kstatus's verdict and, when reason is set, the reason of its condition.
func wantResult(t *testing.T, res *status.Result, want status.Status, reason string) {
	t.Helper()
	if res.Status != want {
		t.Fatalf("kstatus says %s (%q), want %s", res.Status, res.Message, want)
	}
	if reason != "" && (len(res.Conditions) == 0 || res.Conditions[0].Reason != reason) {
		t.Errorf("kstatus conditions %+v, want reason %s", res.Conditions, reason)
	}
}

// wantConditions checks the object's conditions, in order, as type=status/reason.
func wantConditions(t *testing.T, u *unstructured.Unstructured, want ...string) {
	t.Helper()
	if got := conditionsOf(u); !equal(got, want) {
		t.Errorf("%s: conditions %v, want %v", u.GetName(), got, want)
	}
}

// waitConditions waits until kind/name carries exactly the conditions want.
func waitConditions(t *testing.T, e *env, kind, name string, want ...string) {
	t.Helper()
	var got []string
	err := harness.WaitFor(context.Background(), 30*time.Second, 50*time.Millisecond, func() (bool, error) {
		got = conditionsOf(e.live(t, kind, name))
		return equal(got, want), nil
	})
	if err != nil {
		t.Fatalf("%s %s: conditions %v, never %v", kind, name, got, want)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// wantObserved checks that status.observedGeneration is the object's generation.
func wantObserved(t *testing.T, u *unstructured.Unstructured) {
	t.Helper()
	if og, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration"); og != u.GetGeneration() {
		t.Errorf("%s: observedGeneration %d, generation %d", u.GetName(), og, u.GetGeneration())
	}
}

// specChange edits the spec of name (read into obj) and checks that the generation moved.
func specChange(t *testing.T, e *env, obj client.Object, name string, edit func(client.Object)) {
	t.Helper()
	must(t, cp.Client.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: name}, obj))
	gen := obj.GetGeneration()
	orig := obj.DeepCopyObject().(client.Object)
	edit(obj)
	must(t, cp.Client.Patch(context.Background(), obj, client.MergeFrom(orig)))
	if obj.GetGeneration() == gen {
		t.Fatalf("%s: the edit did not change the generation", name)
	}
}
