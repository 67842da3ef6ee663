package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/test/harness"
)

// openFindings are the counts the suite finds violated on main today, each with its cause (see the
// README's "Chaos and soak"): the short run reports them instead of failing make test, until the fix
// lands and the entry is deleted. Every other count fails the test.
var openFindings = map[string]string{
	"secret-seconds holding a dead credential, avoidable": "10-minute seed 55 at 37e248f (seeds 66 and 44 clean there): 0.6 s on each " +
		"Secret of the shared key after a 3 s API outage (their writes' retries had backed off to seconds; retryOutages since) and 0.7 s " +
		"on the re-login session after an API restart; at ccf25ae neither, but 0.2 s on each shared-key Secret: their writes failed through " +
		"an API restart and the leader lost its lease 0.3 s after it, before its next retry (within retryOutages' 500 ms)",
}

// TestChaosShort is the short run of make test: two minutes of every fault on a fixed seed, the same
// counts and limits as make chaos. It runs where the envtest suites run (KUBEBUILDER_ASSETS set, as
// make test sets it) and not under -short.
func TestChaosShort(t *testing.T) {
	if os.Getenv(harness.AssetsEnv) == "" || testing.Short() {
		t.Skip("needs " + harness.AssetsEnv + " (make test sets it); not under -short")
	}
	var progress strings.Builder
	rep, err := Run(t.Context(), Options{Duration: 2 * time.Minute, Seed: 1, Faults: "all", Sets: 1, Replicas: 2, Progress: &progress})
	if err != nil {
		t.Fatalf("chaos run: %v\n%s", err, progress.String())
	}
	var out strings.Builder
	rep.Print(&out)
	t.Log(out.String())
	for _, r := range rep.Rows {
		if r.OK {
			continue
		}
		if why, open := openFindings[r.Name]; open {
			t.Logf("open finding, not failing the run: %s = %s (%s)", r.Name, r.Value, why)
			continue
		}
		t.Errorf("%s = %s, limit %s", r.Name, r.Value, r.Limit)
	}
}
