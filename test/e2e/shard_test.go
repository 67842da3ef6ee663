package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/holders"
	"github.com/credops/thingspace-operator/test/harness"
)

// TestShardsAsTwoManagerBinaries runs two manager binaries as shards (--watch-label-selector shard=a
// and shard=b, a leader election each, the holder registry in the test's namespace) in place of the
// suite's manager. Each writes only its own app's Secret, an app labelled for neither gets no status,
// both register the one key they share, and a refresh request in shard a revokes nothing while shard b
// holds the token. Serial: it stops the suite's manager for a while.
func TestShardsAsTwoManagerBinaries(t *testing.T) {
	key, secret := "e2e-shard-key", "e2e-shard-"+randHex(12)
	sim := newSim(t, longLifetime, key+":"+secret)
	ns := newNamespace(t)
	createCredentials(t, ns, "creds", key, secret)

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
	shards := map[string]*harness.Manager{}
	for _, name := range []string{"a", "b"} {
		c := cfg
		c.Args = append(slices.Clone(cfg.Args), "--watch-label-selector=shard="+name, "--leader-election-id=e2e-shard-"+name,
			"--holder-registry-namespace="+ns,
			"--leader-elect-lease-duration=6s", "--leader-elect-renew-deadline=4s", "--leader-elect-retry-period=1s")
		c.LeaderElect, c.LeaderElectionNamespace, c.CallbackAddr = true, ns, ""
		c.LogPath = filepath.Join(workDir, "manager-shard-"+name+".log")
		m, err := c.Start(t.Context())
		if err != nil {
			t.Fatalf("start shard %s: %v", name, err)
		}
		t.Cleanup(func() { _ = m.Stop() })
		shards[name] = m
	}
	for _, name := range []string{"a", "b", "x"} {
		app := harness.NewApp(ns, name+"-app", sim.URL, "creds", name+"-app-token")
		if name != "x" {
			app.Labels = map[string]string{"shard": name}
		}
		createApp(t, app)
	}
	waitReady(t, ns, "a-app")
	waitReady(t, ns, "b-app")
	tokA, _ := readToken(t, ns, "a-app-token")
	tokB, _ := readToken(t, ns, "b-app-token")
	if tokA != tokB {
		t.Fatal("two shards of one key hold different tokens")
	}
	time.Sleep(2 * time.Second) // the unlabelled app was created with the others
	if x := getApp(t, ns, "x-app"); len(x.Status.Conditions) != 0 {
		t.Errorf("x-app, in no shard, was reconciled: %s", describe(x))
	}
	for name, m := range shards {
		other := map[string]string{"a": "b", "b": "a"}[name]
		logs := m.Logs()
		if !strings.Contains(logs, name+"-app-token") || strings.Contains(logs, other+"-app-token") || strings.Contains(logs, "x-app-token") {
			t.Errorf("shard %s's log does not show it writing its own app's Secret only; log %s", name, m.LogPath)
		}
	}
	// Both shards registered the key, under their leader-election IDs.
	leases := &coordinationv1.LeaseList{}
	if err := k8s.List(t.Context(), leases, client.InNamespace(ns), client.HasLabels{holders.LabelKey}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range leases.Items {
		ids = append(ids, ptr.Deref(l.Spec.HolderIdentity, ""))
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"e2e-shard-a", "e2e-shard-b"}) {
		t.Errorf("holder registry Leases of %v, want one per shard", ids)
	}

	patchAnnotations(t, ns, "a-app", map[string]string{v1alpha1.RefreshRequestedAnnotation: "e2e-shard-1"})
	waitApp(t, ns, "a-app", 30*time.Second, "the refresh request observed", func(a *v1alpha1.ThingSpaceApp) bool {
		return a.Status.ObservedRefreshRequest == "e2e-shard-1"
	})
	if n := calls(t, sim, harness.RouteRevoke, 200); n != 0 {
		t.Errorf("a refresh request in shard a revoked %d time(s) the token shard b holds", n)
	}
	if tok, _ := readToken(t, ns, "b-app-token"); tok != tokB {
		t.Errorf("shard b's token changed")
	}
}
