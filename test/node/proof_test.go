//go:build node

package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/test/harness"
)

// proofRotations is how many rotations every workload of the proof lives through.
var proofRotations = envInt("NODE_PROOF_ROTATIONS", 3)

// proofWorkload is one workload of the proof, each its own pod, and what its row is judged by.
type proofWorkload struct {
	label string
	pod   *corev1.Pod
	rbac  []client.Object
	sim   *proofSim
	// rotates is the app token Secret whose rotations the workload must live through; reads is the
	// Secret its calls' credential comes from (the same, but for the M2M session's).
	rotates, reads *secretTrack
	// deadWindow: the plain reader with one key set, whose failures are the point (and must show).
	deadWindow bool
	started    time.Time
}

// proofWorkloads are the cases of issue 11 §4, all run at once in one window.
func proofWorkloads(tr map[string]*secretTrack) []*proofWorkload {
	one, sb := proofSims.oneKey, proofSims.standby
	oneCheck, sbCheck := one.url+proofCheckPath, sb.url+proofCheckPath
	return []*proofWorkload{
		{label: "1 mounted file, one key set", deadWindow: true,
			pod: proofPod("reader-one-key", appReader("reader-one-key", oneCheck), proofOneKeySecret),
			sim: one, rotates: tr[proofOneKeySecret], reads: tr[proofOneKeySecret]},
		{label: "2 mounted file, standby key set",
			pod: proofPod("reader-standby", appReader("reader-standby", sbCheck), proofStandbySecret),
			sim: sb, rotates: tr[proofStandbySecret], reads: tr[proofStandbySecret]},
		{label: "3 Go library (pkg/credentials) via API, one key set",
			pod:  goWorkloadPod("go-api-one-key", proofOneKeySecret, oneCheck),
			rbac: secretReaderRBAC("go-api-one-key", proofOneKeySecret),
			sim:  one, rotates: tr[proofOneKeySecret], reads: tr[proofOneKeySecret]},
		{label: "4 sidecar (thingspace-proxy) via API, one key set",
			pod:  sidecarPod("sidecar-one-key", one.url, proofOneKeySecret, true),
			rbac: secretReaderRBAC("sidecar-one-key", proofOneKeySecret),
			sim:  one, rotates: tr[proofOneKeySecret], reads: tr[proofOneKeySecret]},
		{label: "4 sidecar (thingspace-proxy) mounted file, standby",
			pod: sidecarPod("sidecar-standby", sb.url, proofStandbySecret, false),
			sim: sb, rotates: tr[proofStandbySecret], reads: tr[proofStandbySecret]},
		{label: "M2M mounted files (both headers), standby key set",
			pod: proofPod("m2m-standby", m2mReader("m2m-standby", sb.url+proofM2MCheckPath), proofSessionSecret),
			sim: sb, rotates: tr[proofStandbySecret], reads: tr[proofSessionSecret]},
	}
}

// TestWorkloads is the proof of issue 11 §4: at the kubelet's stock syncFrequency (1m), workload pods
// call an upstream that needs a valid credential every 100 ms through proofRotations rotations, and
// count the calls that failed. A plain reader of the mounted token with one key set holds a dead token
// for up to ~90 s at every rotation; the other workloads must not fail a single call. The window ends
// once every workload has made an accepted call with the credential its Secret holds after the last
// rotation, so a workload that never switched cannot pass.
func TestWorkloads(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	managerNS, reused := ensureManager(ctx, t)
	ensureStockSyncFrequency(t)
	began := time.Now()
	createProofTenant(t)
	tracks := map[string]*secretTrack{}
	for _, name := range []string{proofOneKeySecret, proofStandbySecret, proofSessionSecret} {
		tracks[name] = trackSecret(ctx, t, name)
	}
	ws := proofWorkloads(tracks)
	startProofPods(t, ws)
	// The first rotation comes proofRotationEvery after the first tokens, the last one the kubelet's
	// lag (~90 s) later reaches the mounted files.
	end := waitProof(t, ws, began.Add(time.Duration(proofRotations)*proofRotationEvery+proofHandoverBefore+2*time.Minute))
	refused := map[string]int{}
	for _, w := range ws {
		refused[w.pod.Name] = w.sim.ledger.calls(w.pod.Name).refused
	}
	rows := make([]proofRow, 0, len(ws))
	for _, w := range ws {
		row := judge(t, w, end)
		row.refused = refused[w.pod.Name]
		rows = append(rows, row)
	}
	t.Logf("MEASURED workload proof, kubelet syncFrequency=1m (stock), calls every %s; token lifetime %s with one key set, %s with a standby key set and handoverBefore %s:",
		proofInterval, proofOneKeyLife, proofStandbyLife, proofHandoverBefore)
	t.Logf("MEASURED %s", proofTableHeader)
	for _, r := range rows {
		t.Logf("MEASURED %s", r)
	}
	if reused {
		// The manager's log stream of TestNode ended with it: read the whole log again for the checks.
		logs.reread(managerNS, managerLabels)
	}
}

// startProofPods creates every workload's RBAC and pod at once and waits for them to run.
func startProofPods(t *testing.T, ws []*proofWorkload) {
	t.Helper()
	for _, w := range ws {
		for _, o := range w.rbac {
			must(t, k8s.Create(t.Context(), o))
		}
		must(t, k8s.Create(t.Context(), w.pod))
		pod := w.pod
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), pod, client.GracePeriodSeconds(0)) })
	}
	for _, w := range ws {
		err := harness.WaitFor(t.Context(), 2*time.Minute, 250*time.Millisecond, func() (bool, error) {
			if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(w.pod), w.pod); err != nil {
				return false, err
			}
			return w.pod.Status.Phase == corev1.PodRunning, nil
		})
		if err != nil {
			t.Fatalf("workload pod %s not running: %v (phase %s, %+v)", w.pod.Name, err, w.pod.Status.Phase, w.pod.Status.ContainerStatuses)
		}
		w.started = time.Now()
	}
}

// done says whether w has lived through the rotations and called with the newest credential.
func (w *proofWorkload) done() (bool, string) {
	_, rotations := w.rotates.state(w.started)
	current, changes := w.reads.state(w.started)
	_, used := w.sim.ledger.calls(w.pod.Name).accepted[current]
	return rotations >= proofRotations && changes >= proofRotations && used,
		fmt.Sprintf("%s: %d rotations, newest credential used: %v", w.pod.Name, rotations, used)
}

// waitProof waits until every workload is done, and returns when that was.
func waitProof(t *testing.T, ws []*proofWorkload, deadline time.Time) time.Time {
	t.Helper()
	lastLog := time.Now()
	for {
		all, states := true, ""
		for _, w := range ws {
			ok, state := w.done()
			all = all && ok
			states += "; " + state
		}
		if all {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workloads did not all live through %d rotations and use the newest credential by %s%s",
				proofRotations, deadline.Format(time.TimeOnly), states)
		}
		if time.Since(lastLog) > time.Minute {
			t.Logf("proof at %s%s", time.Now().Format(time.TimeOnly), states)
			lastLog = time.Now()
		}
		select {
		case <-t.Context().Done():
			t.FailNow()
		case <-time.After(time.Second):
		}
	}
}

// judge reads w's log up to end and fails t unless its calls went as they must: a dead window for the
// plain one-key reader, none for the rest, and calls until the end.
func judge(t *testing.T, w *proofWorkload, end time.Time) proofRow {
	t.Helper()
	b, err := clients.CoreV1().Pods(proofNS).GetLogs(w.pod.Name, &corev1.PodLogOptions{Container: "app", Timestamps: true}).DoRaw(t.Context())
	must(t, err)
	cl, err := parseCallLog(string(b), end)
	if err != nil {
		t.Errorf("%s: %v", w.pod.Name, err)
	}
	_, rotations := w.rotates.state(w.started)
	row := proofRow{workload: w.label, rotations: rotations, log: cl}
	switch {
	case end.Sub(cl.lastReport) > 10*time.Second:
		t.Errorf("%s stopped reporting at %s (the window ended at %s): its counts prove nothing; log ends:\n%s",
			w.pod.Name, cl.lastReport.Format(time.TimeOnly), end.Format(time.TimeOnly), tailLines(string(b), 5))
	case w.deadWindow && cl.failed == 0:
		t.Errorf("%s: no failed call through %d rotations: the plain reader with one key set must show the dead window, or the test proves nothing", w.pod.Name, rotations)
	case !w.deadWindow && cl.failed > 0:
		t.Errorf("%s: %d of %d calls failed (longest window %s): want 0", w.pod.Name, cl.failed, cl.calls, cl.longest.Round(100*time.Millisecond))
	}
	return row
}
