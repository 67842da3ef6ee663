package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// leaseName is the manager's leader-election ID (cmd/manager), the Lease's name.
const leaseName = "thingspace-operator.credops.io"

// TestCloudLeaseLostMidRefresh, issue 8 scenario 6: a leader that loses its Lease while a Verizon Cloud
// refresh is in flight stores the rotated refresh token before it exits. controller-runtime skips the
// graceful shutdown on a lost lease, so the manager used to exit at once and the rotated token, which
// exists nowhere else, was lost with the grant. Serial: it replaces the suite's manager with a
// leader-elected one for a while.
func TestCloudLeaseLostMidRefresh(t *testing.T) {
	const hold = 12 * time.Second // the simulator holds the refresh answer this long after rotating
	e := newCloudEnv(t, cloudOpts{})
	e.consent()
	old := e.tokens()

	// The suite's manager makes way for a leader-elected one on the same callback address. Short lease
	// timings, so the lease is lost quickly; a long upstream timeout, so the held answer is waited for.
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
	cfg.LeaderElect = true
	cfg.LogPath = filepath.Join(workDir, "manager-leader.log")
	cfg.Args = append(cfg.Args, "--upstream-timeout=30s",
		"--leader-elect-lease-duration=6s", "--leader-elect-renew-deadline=4s", "--leader-elect-retry-period=1s")
	leader, err := cfg.Start(t.Context())
	if err != nil {
		t.Fatalf("start a leader-elected manager: %v", err)
	}
	t.Cleanup(func() { _ = leader.Stop() })
	t.Cleanup(func() { _ = e.sim.SetCloudTokenDelay(0) })
	lease := &coordinationv1.Lease{}
	key := client.ObjectKey{Namespace: "default", Name: leaseName}
	if err := harness.WaitFor(t.Context(), 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		if err := k8s.Get(t.Context(), key, lease); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "", nil
	}); err != nil {
		t.Fatalf("the manager never took the lease: %v", err)
	}
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}})
	})
	e.waitReady()

	before := e.stats()
	if err := e.sim.SetCloudTokenDelay(hold); err != nil {
		t.Fatal(err)
	}
	e.requestRefresh("lease-lost")
	e.waitRefreshes(before.Refreshes+1, cloudWait)
	if ct, _, _ := e.readSecret(); ct.refresh != old.refresh {
		t.Fatalf("the Secret's refresh token changed before the answer was released")
	}

	// Another replica takes the lease: the leader's renewals fail until its renew deadline.
	stolen := time.Now()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(t.Context(), key, lease); err != nil {
			return err
		}
		now := metav1.NewMicroTime(time.Now())
		lease.Spec.HolderIdentity = new("another-replica")
		lease.Spec.AcquireTime, lease.Spec.RenewTime = &now, &now
		lease.Spec.LeaseDurationSeconds = new(int32(300))
		return k8s.Update(t.Context(), lease)
	}); err != nil {
		t.Fatalf("steal the lease: %v", err)
	}
	if err := harness.WaitFor(t.Context(), hold+60*time.Second, 100*time.Millisecond, func() (bool, error) {
		return !leader.Running(), nil
	}); err != nil {
		t.Fatalf("the manager kept running after losing its lease: %v", err)
	}
	t.Logf("the manager exited %v after the lease was taken (the answer was held %v)", time.Since(stolen).Round(10*time.Millisecond), hold)
	if err := leader.Stop(); err == nil {
		t.Errorf("the manager exited cleanly after losing its lease; it must exit non-zero so that it is restarted")
	}
	logs := leader.Logs()
	if !strings.Contains(logs, "leader election lost") {
		t.Errorf("the manager did not exit because of the lost lease; log %s", leader.LogPath)
	}
	if !strings.Contains(logs, "Waiting for in-flight upstream answers to be stored") || !strings.Contains(logs, `"inFlight":1`) {
		t.Errorf("the manager's log does not say it waited for the one refresh in flight; log %s", leader.LogPath)
	}

	// The answer of the refresh in flight is in the Secret.
	ct, _, ok := e.readSecret()
	switch {
	case !ok:
		t.Fatalf("the Secret is gone")
	case ct.refresh == "" || ct.refresh == old.refresh:
		t.Fatalf("after the lost lease the Secret holds %s refresh token, want the rotated one",
			map[bool]string{true: "no", false: "the old (rotated, now dead)"}[ct.refresh == ""])
	case ct.access == old.access:
		t.Errorf("after the lost lease the Secret still holds the old access token")
	}
	if _, marked := ct.annotations[v1alpha1.RefreshStartedAnnotation]; marked {
		t.Errorf("after the lost lease the Secret still carries %s: the answer was not stored", v1alpha1.RefreshStartedAnnotation)
	}

	// The suite's manager takes over with the stored token: no reuse, one live refresh token.
	if err := e.sim.SetCloudTokenDelay(0); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(t.Context()); err != nil {
		t.Fatalf("start the suite's manager again: %v", err)
	}
	e.waitReady()
	st := e.checkNoReuse("after the lost lease")
	if st.LiveRefreshTokens != 1 {
		t.Errorf("%d live refresh tokens at the simulator, want 1", st.LiveRefreshTokens)
	}
}
