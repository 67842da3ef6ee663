//go:build node

package node

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/internal/simulator"
)

const callbackPort = 8082

// settle is how long a new manager (a new leader, an upgraded or reinstalled one) is watched after it
// took the lease: long enough to reconcile every object of the tenant several times over.
const settle = 20 * time.Second

// TestNode walks the life of an installation in order: each step builds on the one before.
func TestNode(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logs.follow(ctx, operatorNS, managerLabels)

	t.Run("HelmInstall", func(t *testing.T) {
		helm(t, "install", release, chartDir(), "--create-namespace", "--wait", "--timeout", "4m",
			"-f", chartValues(t, tagOf(image), 1))
		waitRollout(t, operatorNS, deploymentName(t, operatorNS), 1)
		assertManagerProcesses(t)
		createTenant(t)
		giveConsent(t, managerPodIPs(t), callbackPort)
		waitAllReady(t, 2*time.Minute)
		calls := sim.credentialCalls()
		t.Logf("upstream calls to make the tenant's credentials: %v", calls)
	})

	// The workload outlives the subtests: every later step checks that it still reads valid tokens.
	var w *workload
	t.Run("WorkloadReadsRotatedToken", func(t *testing.T) {
		w = startWorkload(ctx, t, "workload")
		data, _ := secretData(t, appSecretName)
		w.waitReads(t, string(data["access_token"]), time.Time{}, time.Minute)
		delays, rejected := measureRotations(t, w, envInt("NODE_ROTATIONS", 3), 30*time.Second)
		t.Logf("MEASURED kubelet syncFrequency=%s: Secret change → new token read in the pod: %s (%d reads of a revoked token in between)",
			envOr("NODE_SYNC_FREQUENCY", "1s"), formatDelays(delays), rejected)
	})
	if w == nil {
		t.FailNow()
	}

	t.Run("LeaderHandover", func(t *testing.T) {
		helm(t, "upgrade", release, chartDir(), "--wait", "--timeout", "4m", "-f", chartValues(t, tagOf(image), 2))
		waitRollout(t, operatorNS, deploymentName(t, operatorNS), 2)
		old := waitLeader(t, "")
		before := snapshot(t)
		took := time.Now()
		must(t, k8s.Delete(t.Context(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: old}}))
		next := waitLeader(t, old)
		t.Logf("MEASURED leader handover: %s → %s in %s", old, next, time.Since(took).Round(100*time.Millisecond))
		before.settled(t, "after the leader pod was deleted")
		waitRollout(t, operatorNS, deploymentName(t, operatorNS), 2)
		// The new leader acts: a rotation asked of it reaches the workload.
		delays, _ := measureRotations(t, w, 1, 30*time.Second)
		t.Logf("rotation by the new leader read in the pod after %s", formatDelays(delays))
	})

	t.Run("HelmUpgrade", func(t *testing.T) {
		retag(t, image, repoOf(image)+":upgrade")
		before := snapshot(t)
		helm(t, "upgrade", release, chartDir(), "--wait", "--timeout", "4m", "-f", chartValues(t, "upgrade", 2))
		waitRollout(t, operatorNS, deploymentName(t, operatorNS), 2)
		assertImage(t, repoOf(image)+":upgrade")
		waitLeader(t, "")
		before.settled(t, "after helm upgrade to a new image tag")
	})

	t.Run("UninstallKeepsCRDsAndReinstall", func(t *testing.T) {
		helm(t, "uninstall", release, "--wait", "--timeout", "4m")
		assertKept(t)
		before := snapshot(t)
		helm(t, "install", release, chartDir(), "--wait", "--timeout", "4m", "-f", chartValues(t, tagOf(image), 1))
		waitRollout(t, operatorNS, deploymentName(t, operatorNS), 1)
		waitLeader(t, "")
		before.settled(t, "after helm uninstall and install again")
	})

	t.Run("Kustomize", func(t *testing.T) {
		helm(t, "uninstall", release, "--wait", "--timeout", "4m")
		assertKept(t)
		logs.follow(ctx, kustomizeNS, managerLabels)
		before := snapshot(t)
		deployKustomize(t)
		waitRollout(t, kustomizeNS, deploymentName(t, kustomizeNS), 1)
		before.settled(t, "after the switch from Helm to kustomize")
		delays, _ := measureRotations(t, w, 1, 30*time.Second)
		t.Logf("rotation by the kustomize-installed manager read in the pod after %s", formatDelays(delays))
	})

	if n := envInt("NODE_STOCK_ROTATIONS", 0); n > 0 {
		t.Run("StockSyncFrequency", func(t *testing.T) {
			setKubeletSyncFrequency(t, "1m")
			// A restarted kubelet syncs every pod at once: a rotation right then would be read at once,
			// which says nothing about the stock setting.
			time.Sleep(10 * time.Second)
			delays, rejected := measureRotations(t, w, n, 150*time.Second)
			t.Logf("MEASURED kubelet syncFrequency=1m (stock): Secret change → new token read in the pod: %s (%d reads of a revoked token in between)",
				formatDelays(delays), rejected)
		})
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

// upstreamState is what the simulator had seen at one moment.
type upstreamState struct {
	calls map[string]int
	cloud simulator.CloudStats
}

func snapshot(t *testing.T) upstreamState {
	t.Helper()
	return upstreamState{calls: sim.credentialCalls(), cloud: sim.CloudStats()}
}

// settled watches a new manager for settle, then fails t unless every credential is ready and none
// was asked for since s.
func (s upstreamState) settled(t *testing.T, when string) {
	t.Helper()
	time.Sleep(settle)
	waitAllReady(t, time.Minute)
	s.assertNoCredentialCalls(t, when)
}

// assertNoCredentialCalls fails t when credentials were requested, a consent asked for or a refresh
// token sent twice since s.
func (s upstreamState) assertNoCredentialCalls(t *testing.T, when string) {
	t.Helper()
	now := snapshot(t)
	for route, n := range now.calls {
		if n != s.calls[route] {
			t.Errorf("%s: %d upstream calls to %s (want 0)", when, n-s.calls[route], route)
		}
	}
	if now.cloud.RefreshTokenReuses != 0 || now.cloud.CodesIssued != s.cloud.CodesIssued {
		t.Errorf("%s: refresh token reuses %d (want 0), new consents %d (want 0)", when,
			now.cloud.RefreshTokenReuses, now.cloud.CodesIssued-s.cloud.CodesIssued)
	}
	cloud := tenantCloud()
	must(t, k8s.Get(t.Context(), client.ObjectKeyFromObject(cloud), cloud))
	if cloud.Status.ConsentStateHash != "" {
		t.Errorf("%s: the CloudAuthorization asks for consent again", when)
	}
}

// deploymentName is the one manager Deployment in ns.
func deploymentName(t *testing.T, ns string) string {
	t.Helper()
	list := &appsv1.DeploymentList{}
	must(t, k8s.List(t.Context(), list, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/name": "thingspace-operator"}))
	if len(list.Items) != 1 {
		t.Fatalf("%d manager Deployments in %s, want 1", len(list.Items), ns)
	}
	return list.Items[0].Name
}

func managerPodIPs(t *testing.T) func() []string {
	return func() []string {
		list, err := clients.CoreV1().Pods(operatorNS).List(t.Context(), metav1.ListOptions{LabelSelector: managerLabels})
		if err != nil {
			return nil
		}
		var ips []string
		for _, p := range list.Items {
			if p.Status.PodIP != "" && p.DeletionTimestamp == nil {
				ips = append(ips, p.Status.PodIP)
			}
		}
		return ips
	}
}
