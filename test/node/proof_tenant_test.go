//go:build node

package node

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// The proof's tenant, in a namespace of its own.
const (
	proofNS            = "proof"
	proofOneKeyApp     = "one-key"
	proofOneKeySecret  = "one-key-token"
	proofStandbyApp    = "standby"
	proofStandbySecret = "standby-token"
	proofSession       = "m2m"
	proofSessionSecret = "m2m-session"
	proofAccount       = "0000123456-00001"
)

// ensureManager makes sure one manager runs: TestNode leaves its last install (kustomize) running;
// run alone (`make bench-workloads`), the proof installs the chart itself. It returns the manager's
// namespace, and whether it was running already.
func ensureManager(ctx context.Context, t *testing.T) (string, bool) {
	t.Helper()
	for _, ns := range []string{operatorNS, kustomizeNS} {
		list := &appsv1.DeploymentList{}
		must(t, k8s.List(t.Context(), list, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/name": "thingspace-operator"}))
		if len(list.Items) == 1 {
			waitRollout(t, ns, list.Items[0].Name, ptrOr(list.Items[0].Spec.Replicas, 1))
			return ns, true
		}
	}
	logs.follow(ctx, operatorNS, managerLabels)
	helm(t, "install", release, chartDir(), "--create-namespace", "--wait", "--timeout", "4m",
		"-f", chartValues(t, tagOf(image), 1))
	waitRollout(t, operatorNS, deploymentName(t, operatorNS), 1)
	return operatorNS, false
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

var syncFrequencyLine = regexp.MustCompile(`(?m)^syncFrequency: (\S+)$`)

// ensureStockSyncFrequency restarts the kubelet with its default syncFrequency (1m) unless it runs
// with it already (TestNode's last step leaves it so).
func ensureStockSyncFrequency(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(lab, "etc", "kubelet.yaml"))
	must(t, err)
	if m := syncFrequencyLine.FindSubmatch(b); m != nil && string(m[1]) == "1m" {
		return
	}
	setKubeletSyncFrequency(t, "1m")
	// A restarted kubelet syncs every pod at once; the proof's pods start after that.
	time.Sleep(10 * time.Second)
}

// createProofTenant creates the proof's namespace, credentials, the one-key app, the standby app and
// the M2M session on it, and waits for their Secrets.
func createProofTenant(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	must(t, client.IgnoreAlreadyExists(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: proofNS}})))
	must(t, harness.CreateCredentials(ctx, k8s, proofNS, "one-key-credentials", proofOneKey, proofOneSecret))
	must(t, harness.CreateCredentials(ctx, k8s, proofNS, "primary-credentials", proofPrimaryKey, proofPrimarySec))
	must(t, harness.CreateCredentials(ctx, k8s, proofNS, "standby-credentials", proofStandbyKey, proofStandbySec))
	must(t, harness.CreateUWSCredentials(ctx, k8s, proofNS, "uws-credentials", proofUWSUser, proofUWSPassword))
	must(t, k8s.Create(ctx, harness.NewApp(proofNS, proofOneKeyApp, proofSims.oneKey.url, "one-key-credentials", proofOneKeySecret)))
	standby := harness.NewApp(proofNS, proofStandbyApp, proofSims.standby.url, "primary-credentials", proofStandbySecret)
	standby.Spec.StandbyCredentialsSecretRef = &v1alpha1.LocalSecretReference{Name: "standby-credentials"}
	standby.Spec.HandoverBefore = &metav1.Duration{Duration: proofHandoverBefore}
	must(t, k8s.Create(ctx, standby))
	// A keep-alive read of the account, never a re-login: the session Secret changes only with its app.
	must(t, k8s.Create(ctx, harness.NewM2MSession(proofNS, proofSession, proofStandbyApp, "uws-credentials",
		proofSessionSecret, keepAliveEvery, proofAccount)))
	for _, name := range []string{proofOneKeySecret, proofStandbySecret, proofSessionSecret} {
		err := harness.WaitFor(ctx, 2*time.Minute, 250*time.Millisecond, func() (bool, error) {
			s, err := clients.CoreV1().Secrets(proofNS).Get(ctx, name, metav1.GetOptions{})
			return err == nil && len(s.Data[v1alpha1.SecretKeyAccessToken]) > 0, nil
		})
		if err != nil {
			t.Fatalf("Secret %s/%s not written: %v", proofNS, name, err)
		}
	}
}

// secretTrack polls one Secret of the proof and records every change of the credential it carries
// (access_token, and session_token for an M2M Secret).
type secretTrack struct {
	name string

	mu      sync.Mutex
	current string // credentialDigest of what it holds
	changes []time.Time
}

func trackSecret(ctx context.Context, t *testing.T, name string) *secretTrack {
	t.Helper()
	s := &secretTrack{name: name}
	s.poll(ctx)
	if s.current == "" {
		t.Fatalf("Secret %s/%s holds no credential", proofNS, name)
	}
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				s.poll(ctx)
			}
		}
	}()
	return s
}

func (s *secretTrack) poll(ctx context.Context) {
	sec, err := clients.CoreV1().Secrets(proofNS).Get(ctx, s.name, metav1.GetOptions{})
	if err != nil {
		return
	}
	access, session := string(sec.Data[v1alpha1.SecretKeyAccessToken]), string(sec.Data[v1alpha1.SecretKeySessionToken])
	if access == "" {
		return
	}
	sensitive.Add("a proof token", access)
	if session != "" {
		sensitive.Add("a proof session token", session)
	}
	cred := credentialDigest(access, session)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current != "" && cred != s.current {
		s.changes = append(s.changes, time.Now())
	}
	s.current = cred
}

// state returns the credential held now and how many changes happened after since.
func (s *secretTrack) state(since time.Time) (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.changes {
		if c.After(since) {
			n++
		}
	}
	return s.current, n
}
