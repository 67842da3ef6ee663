package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// Helpers the tests share: namespaces and simulators of their own, cleaned up for the leak check, and
// reading and waiting on ThingSpaceApps.

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// fileBase is t's name as a file name.
func fileBase(t *testing.T) string { return nonName.ReplaceAllString(strings.ToLower(t.Name()), "-") }

// newNamespace creates a namespace for t. Cleanup records the statuses of its ThingSpaceApps and
// CloudAuthorizations for the leak check, deletes them (finalizers removed: their simulator may be gone)
// and deletes the namespace (envtest has no namespace controller, so it stays Terminating; its Events
// stay for the leak check).
func newNamespace(t *testing.T) string {
	t.Helper()
	base := strings.Trim(fileBase(t), "-")
	if len(base) > 40 {
		base = base[:40]
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + base + "-" + randHex(5)}}
	if err := k8s.Create(t.Context(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		apps := &v1alpha1.ThingSpaceAppList{}
		if err := k8s.List(ctx, apps, client.InNamespace(ns.Name)); err != nil {
			t.Errorf("cleanup: list apps: %v", err)
		}
		for i := range apps.Items {
			cleanUp(ctx, t, "app", &apps.Items[i], apps.Items[i].Status)
		}
		clouds := &v1alpha1.CloudAuthorizationList{}
		if err := k8s.List(ctx, clouds, client.InNamespace(ns.Name)); err != nil {
			t.Errorf("cleanup: list CloudAuthorizations: %v", err)
		}
		for i := range clouds.Items {
			cleanUp(ctx, t, "CloudAuthorization", &clouds.Items[i], clouds.Items[i].Status)
		}
		_ = k8s.Delete(ctx, ns)
	})
	return ns.Name
}

// cleanUp records obj's status for the leak check and deletes obj, its finalizers removed first (its
// simulator may be gone).
func cleanUp(ctx context.Context, t *testing.T, kind string, obj client.Object, status any) {
	collectStatus(status)
	if len(obj.GetFinalizers()) > 0 {
		patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
		obj.SetFinalizers(nil)
		_ = k8s.Patch(ctx, obj, patch)
	}
	if err := k8s.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("cleanup: delete %s %s: %v", kind, obj.GetName(), err)
	}
}

// newSim starts a simulator of t's own with the given token lifetime and apps ("key:secret"; an entry
// starting with "--" is a flag instead); its counts are t's alone. Start it before newNamespace, so
// that the apps are gone before it stops.
func newSim(t *testing.T, tokenLifetime string, apps ...string) *harness.Sim {
	t.Helper()
	args := []string{"--token-lifetime", tokenLifetime}
	for _, a := range apps {
		if strings.HasPrefix(a, "--") { // a flag, not an app
			args = append(args, a)
			continue
		}
		key, secret, _ := strings.Cut(a, ":")
		sensitive.AddCredentials(key, secret)
		args = append(args, "--app", a)
	}
	return startSim(t, harness.SimConfig{Args: args})
}

// startSim starts a simulator of t's own from cfg (Binary and LogPath filled in) and stops it when t
// ends.
func startSim(t *testing.T, cfg harness.SimConfig) *harness.Sim {
	t.Helper()
	cfg.Binary = simBin
	cfg.LogPath = filepath.Join(workDir, "sim-"+fileBase(t)+".log")
	sim, err := cfg.Start(t.Context())
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() {
		if err := sim.Stop(); err != nil {
			t.Errorf("stop simulator: %v", err)
		}
	})
	return sim
}

func createCredentials(t *testing.T, ns, name, key, secret string) {
	t.Helper()
	sensitive.AddCredentials(key, secret)
	if err := harness.CreateCredentials(t.Context(), k8s, ns, name, key, secret); err != nil {
		t.Fatalf("create credentials Secret %s: %v", name, err)
	}
}

func createApp(t *testing.T, app *v1alpha1.ThingSpaceApp) {
	t.Helper()
	if err := k8s.Create(t.Context(), app); err != nil {
		t.Fatalf("create ThingSpaceApp %s: %v", app.Name, err)
	}
}

// readToken reads the token in a target Secret and records it for the leak check.
func readToken(t *testing.T, ns, secretName string) (string, time.Time) {
	t.Helper()
	tok, exp, err := harness.ReadToken(t.Context(), k8s, ns, secretName)
	if err != nil {
		t.Fatalf("read token: %v", err)
	}
	sensitive.Add("a token", tok)
	return tok, exp
}

func getApp(t *testing.T, ns, name string) *v1alpha1.ThingSpaceApp {
	t.Helper()
	app := &v1alpha1.ThingSpaceApp{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, app); err != nil {
		t.Fatalf("get ThingSpaceApp %s: %v", name, err)
	}
	return app
}

// waitApp polls the app until ok holds.
func waitApp(t *testing.T, ns, name string, timeout time.Duration, what string, ok func(*v1alpha1.ThingSpaceApp) bool) *v1alpha1.ThingSpaceApp {
	t.Helper()
	var last *v1alpha1.ThingSpaceApp
	err := harness.WaitFor(t.Context(), timeout, 50*time.Millisecond, func() (bool, error) {
		app := &v1alpha1.ThingSpaceApp{}
		if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, app); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		last = app
		return ok(app), nil
	})
	if err != nil {
		t.Fatalf("ThingSpaceApp %s/%s: waiting for %s: %v; last status: %s", ns, name, what, err, describe(last))
	}
	return last
}

// waitCondition waits until Ready has the given status and reason for the current generation.
func waitCondition(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string, timeout time.Duration) *v1alpha1.ThingSpaceApp {
	t.Helper()
	return waitApp(t, ns, name, timeout, fmt.Sprintf("Ready=%s reason %s", status, reason), func(app *v1alpha1.ThingSpaceApp) bool {
		c := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Status == status && c.Reason == reason && c.ObservedGeneration == app.Generation
	})
}

func waitReady(t *testing.T, ns, name string) *v1alpha1.ThingSpaceApp {
	t.Helper()
	return waitCondition(t, ns, name, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 30*time.Second)
}

func describe(app *v1alpha1.ThingSpaceApp) string {
	if app == nil {
		return "(not found)"
	}
	c := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil {
		return fmt.Sprintf("no Ready condition (generation %d)", app.Generation)
	}
	return fmt.Sprintf("Ready=%s reason=%s message=%q observedGeneration=%d/%d failedAttempts=%d",
		c.Status, c.Reason, c.Message, c.ObservedGeneration, app.Generation, app.Status.FailedRefreshAttempts)
}

// calls returns the simulator's request count for route: all statuses when status is 0.
func calls(t *testing.T, sim *harness.Sim, route string, status int) int {
	t.Helper()
	var n int
	var err error
	if status == 0 {
		n, err = sim.Total(route)
	} else {
		n, err = sim.Count(route, status)
	}
	if err != nil {
		t.Fatalf("simulator stats: %v", err)
	}
	return n
}

func stats(t *testing.T, sim *harness.Sim) map[string]map[string]int {
	t.Helper()
	st, err := sim.Stats()
	if err != nil {
		t.Fatalf("simulator stats: %v", err)
	}
	return st
}

// patchAnnotations merges annotations into the app's metadata.
func patchAnnotations(t *testing.T, ns, name string, annotations map[string]string) {
	t.Helper()
	app := getApp(t, ns, name)
	patch := client.MergeFrom(app.DeepCopy())
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	for k, v := range annotations {
		app.Annotations[k] = v
	}
	if err := k8s.Patch(t.Context(), app, patch); err != nil {
		t.Fatalf("annotate %s: %v", name, err)
	}
}
