package e2e

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// TestEndpointNoLongerAllowedAfterRestart, issue 9 §2: objects that were Ready against a host the
// manager no longer allows (a restart with another --allowed-endpoint-hosts) get Ready=False reason
// EndpointNotAllowed, and nothing reaches the host any more: no token request (even asked for with a
// refresh request), no keep-alive or login, no Cloud refresh, no revoke or logout when they are
// deleted, and the deletions do not hang. Serial: it replaces the suite's manager for a while.
func TestEndpointNoLongerAllowedAfterRestart(t *testing.T) {
	user, pw := "ep-"+randHex(6), uwsPassword()
	env := newM2MEnv(t, longLifetime, time.Hour, map[string]string{user: pw})
	ns := env.ns
	createUWS(t, ns, "uws", user, pw)
	newSession(t, ns, "sess", "uws")
	rev := harness.NewApp(ns, "rev", env.sim.URL, "app-creds", "rev-token")
	rev.Spec.RevokeOnDelete = true
	createApp(t, rev)
	waitSessionReady(t, ns, "sess")
	waitReady(t, ns, "rev")
	readToken(t, ns, "rev-token")
	cloud := newCloudEnv(t, cloudOpts{})
	cloud.consent()
	cloud.waitReady()
	cloud.tokens()

	// The suite's manager makes way for one that allows a port nothing listens on.
	cfg := mgr.Config()
	if err := mgr.Stop(); err != nil {
		t.Errorf("stop the suite's manager: %v", err)
	}
	t.Cleanup(func() {
		if !mgr.Running() {
			if err := mgr.Start(context.Background()); err != nil {
				t.Errorf("start the suite's manager again: %v", err)
			}
		}
	})
	for _, s := range []*harness.Sim{env.sim, cloud.sim} {
		if err := s.ResetStats(); err != nil {
			t.Fatal(err)
		}
	}
	cfg.LogPath = filepath.Join(workDir, "manager-allowlist.log")
	cfg.Args = append(cfg.Args, "--allowed-endpoint-hosts=127.0.0.1:1")
	other, err := cfg.Start(t.Context())
	if err != nil {
		t.Fatalf("start a manager with another allow-list: %v", err)
	}
	// Cleanups run last first: the log is scanned once the manager has stopped.
	t.Cleanup(func() { scanLog(t, "the allow-list manager's log", other.Logs()) })
	t.Cleanup(func() { _ = other.Stop() })

	for _, name := range []string{"app", "rev"} {
		app := waitCondition(t, ns, name, metav1.ConditionFalse, v1alpha1.ReasonEndpointNotAllowed, 30*time.Second)
		if c := app.Status.Conditions; !strings.Contains(c[0].Message, "--allowed-endpoint-hosts") {
			t.Errorf("%s: message %q", name, c[0].Message)
		}
	}
	waitSessionCondition(t, ns, "sess", metav1.ConditionFalse, v1alpha1.ReasonEndpointNotAllowed, 30*time.Second)
	cloud.wait(30*time.Second, "Ready=False EndpointNotAllowed", func(ca *v1alpha1.CloudAuthorization) bool {
		return hasCondition(ca, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonEndpointNotAllowed)
	})
	// Asking for a refresh does not send one either; sessions would be kept alive every second.
	patchAnnotations(t, ns, "app", map[string]string{v1alpha1.RefreshRequestedAnnotation: "allowlist"})
	cloud.requestRefresh("allowlist")
	time.Sleep(3 * time.Second)

	// Deleting with revokeOnDelete and logoutOnDelete: the objects go, nothing is sent.
	for _, obj := range []client.Object{getApp(t, ns, "rev"), getSession(t, ns, "sess")} {
		if err := k8s.Delete(t.Context(), obj); err != nil {
			t.Fatal(err)
		}
	}
	err = harness.WaitFor(t.Context(), 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		for _, obj := range []client.Object{&v1alpha1.ThingSpaceApp{}, &v1alpha1.M2MSession{}} {
			name := "rev"
			if _, ok := obj.(*v1alpha1.M2MSession); ok {
				name = "sess"
			}
			if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, obj); err == nil || client.IgnoreNotFound(err) != nil {
				return false, client.IgnoreNotFound(err)
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the objects with revokeOnDelete and logoutOnDelete were not deleted: %v", err)
	}
	for what, s := range map[string]*harness.Sim{"ThingSpace": env.sim, "Cloud": cloud.sim} {
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if n := totalRequests(st); n != 0 {
			t.Errorf("%s simulator: %d requests after the host left the allow-list, want none: %v", what, n, st)
		}
	}
}

// A bad --allowed-endpoint-hosts stops the manager before it starts, saying which entry and why.
func TestManagerRefusesABadAllowList(t *testing.T) {
	t.Parallel()
	for list, why := range map[string]string{
		"*.verizon.com":                  "wildcards are not supported",
		"https://thingspace.verizon.com": "not a URL",
		"thingspace.verizon.com,::1":     "write IPv6 addresses in brackets",
		"":                               "the list is empty",
	} {
		cmd := exec.CommandContext(t.Context(), mgr.Config().Binary, "--allowed-endpoint-hosts="+list)
		cmd.Env = []string{"KUBECONFIG=" + cp.KubeconfigPath}
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("--allowed-endpoint-hosts=%q: %v, want exit status 2", list, err)
		}
		if !strings.Contains(string(out), "Invalid --allowed-endpoint-hosts") || !strings.Contains(string(out), why) {
			t.Errorf("--allowed-endpoint-hosts=%q: output %q does not say %q", list, out, why)
		}
	}
}

// totalRequests sums a simulator's request counts over every route and status.
func totalRequests(st map[string]map[string]int) int {
	n := 0
	for _, byStatus := range st {
		for _, c := range byStatus {
			n += c
		}
	}
	return n
}

// scanLog fails t when a sensitive value of the suite is in a manager's log other than the suite's.
func scanLog(t *testing.T, what, log string) {
	for _, l := range sensitive.Scan(what, log) {
		t.Errorf("found %s", l)
	}
}
