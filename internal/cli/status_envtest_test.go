package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// statusFixture creates, in a fresh namespace, one object in each state the table must tell apart, and
// one healthy app in a second namespace. It returns both namespaces.
func statusFixture(t *testing.T) (string, string) {
	t.Helper()
	ns, other := newNamespace(t, "status"), newNamespace(t, "status-other")
	billing := map[string]string{"team": "billing"}
	ready := func(reason, msg string, ago time.Duration) []metav1.Condition {
		return []metav1.Condition{cond("Ready", "True", reason, msg, ago)}
	}
	create(t, newApp(ns, "billing", billing, v1alpha1.ThingSpaceAppStatus{Conditions: ready("TokenValid", "valid", 20*time.Minute),
		RefreshStatus: v1alpha1.RefreshStatus{ExpiresAt: ptr(mt(42 * time.Minute)), RenewalTime: ptr(mt(30 * time.Minute)),
			LastRefreshTime: ptr(mt(-18 * time.Minute))}}))
	create(t, newApp(ns, "broken", nil, v1alpha1.ThingSpaceAppStatus{
		Conditions: []metav1.Condition{cond("Ready", "False", "CredentialsRejected", "The upstream rejected the credentials (401 invalid_client)", 10*time.Minute)},
		RefreshStatus: v1alpha1.RefreshStatus{ExpiresAt: ptr(mt(-3 * time.Minute)), RejectedCredentialsVersion: "123",
			FailedRefreshAttempts: 1, LastFailureTime: ptr(mt(-10 * time.Minute))}}))
	create(t, newApp(ns, "flaky", nil, v1alpha1.ThingSpaceAppStatus{
		Conditions: ready("RefreshFailing", "The last refresh failed (503); the token stays valid, next try at 14:02:00Z", time.Hour),
		RefreshStatus: v1alpha1.RefreshStatus{ExpiresAt: ptr(mt(25 * time.Minute)), RenewalTime: ptr(mt(2 * time.Minute)),
			FailedRefreshAttempts: 2, LastFailureTime: ptr(mt(-90 * time.Second))}}))
	create(t, newM2M(ns, "uws", billing, v1alpha1.M2MSessionStatus{Conditions: ready("SessionValid", "live", time.Hour),
		LastLoginTime: ptr(mt(-2 * time.Minute)), NextKeepAliveTime: ptr(mt(8 * time.Minute))}))
	create(t, newCloud(ns, "photos", nil, v1alpha1.CloudAuthorizationStatus{
		Conditions: []metav1.Condition{
			cond("Authorized", "False", "AuthorizationPending", "Open the consent link to consent", 5*time.Minute),
			cond("Ready", "False", "AuthorizationPending", "Open the consent link to consent", 5*time.Minute)},
		ConsentSecretName: "photos-consent", ConsentStateHash: "h", ConsentExpiresAt: ptr(mt(4 * time.Minute))}))
	create(t, newApp(other, "elsewhere", billing, v1alpha1.ThingSpaceAppStatus{Conditions: ready("TokenValid", "valid", time.Minute),
		RefreshStatus: v1alpha1.RefreshStatus{ExpiresAt: ptr(mt(time.Hour)), RenewalTime: ptr(mt(50 * time.Minute))}}))
	// A token Secret beside them: the plugin never reads it, so its value cannot reach the output.
	if err := cp.Client.Create(context.Background(), &corev1.Secret{ObjectMeta: objMeta(ns, "billing-token", nil),
		Data: map[string][]byte{"access_token": []byte("tok-must-never-print")}}); err != nil {
		t.Fatal(err)
	}
	return ns, other
}

func TestStatusTable(t *testing.T) {
	ns, other := statusFixture(t)
	clk := testingclock.NewFakeClock(now)
	kc := kubeconfig(t, ns, other)

	want := `KIND                 NAME      READY                          EXPIRES                         NEXT RENEWAL                    LAST FAILURE
ThingSpaceApp        billing   True                           in 42m (2026-12-01T14:42:00Z)   in 30m (2026-12-01T14:30:00Z)   -
ThingSpaceApp        broken    False (CredentialsRejected)    3m ago (2026-12-01T13:57:00Z)   -                               CredentialsRejected: The upstream rejected the credentials (401 invalid_client) (10m ago)
ThingSpaceApp        flaky     True                           in 25m (2026-12-01T14:25:00Z)   in 2m (2026-12-01T14:02:00Z)    RefreshFailing: The last refresh failed (503); the token stays valid, next try at 14:... (90s ago)
M2MSession           uws       True                           -                               in 8m (2026-12-01T14:08:00Z)    -
CloudAuthorization   photos    False (AuthorizationPending)   -                               -                               -
`
	// The namespace from -n, from the context, from --context, and through $KUBECONFIG.
	for _, args := range [][]string{
		{"--kubeconfig", kc, "status", "-n", ns},
		{"status", "--kubeconfig", kc},
		{"--kubeconfig", kc, "--context", "other", "status", "--namespace", ns},
	} {
		got := run(t, clk, Env{}, args...)
		if got.code != ExitOK || got.err != "" || got.out != want {
			t.Errorf("%q: exit %d, stderr %q, table:\n%s\nwant:\n%s", args, got.code, got.err, got.out, want)
		}
	}
	t.Setenv("KUBECONFIG", kc)
	if got := run(t, clk, Env{}, "status"); got.out != want {
		t.Errorf("with $KUBECONFIG:\n%s", got.out)
	}
	t.Logf("kubectl thingspace status -n %s\n%s", ns, want)

	// --context other selects that context's namespace.
	got := run(t, clk, Env{}, "--context", "other", "status")
	if got.code != ExitOK || !strings.Contains(got.out, "elsewhere") || strings.Contains(got.out, "billing") {
		t.Errorf("--context other: exit %d\n%s%s", got.code, got.out, got.err)
	}
	if strings.Contains(got.out+want, "tok-must-never-print") {
		t.Error("a token reached the output")
	}
}

func TestStatusAllNamespacesAndSelector(t *testing.T) {
	ns, other := statusFixture(t)
	clk := testingclock.NewFakeClock(now)
	kc := kubeconfig(t, ns, "")

	got := run(t, clk, Env{}, "--kubeconfig", kc, "status", "-A", "-l", "team=billing")
	if got.code != ExitOK {
		t.Fatalf("exit %d: %s", got.code, got.err)
	}
	lines := strings.Split(strings.TrimSpace(got.out), "\n")
	if !strings.HasPrefix(lines[0], "KIND ") || !strings.Contains(lines[0], " NAMESPACE ") {
		t.Errorf("header %q", lines[0])
	}
	// Other tests' namespaces hold objects with the same label: keep this test's two.
	var mine []string
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 2 && (f[1] == ns || f[1] == other) {
			mine = append(mine, f[0]+" "+f[1]+" "+f[2])
		}
	}
	wantRows := []string{"ThingSpaceApp " + ns + " billing", "M2MSession " + ns + " uws", "ThingSpaceApp " + other + " elsewhere"}
	if strings.Join(mine, "|") != strings.Join(wantRows, "|") {
		t.Errorf("rows %q, want %q in:\n%s", mine, wantRows, got.out)
	}

	got = run(t, clk, Env{}, "--kubeconfig", kc, "status", "-n", ns, "-l", "team!=billing", "-o", "json")
	var doc struct {
		Items []Row `json:"items"`
	}
	if err := json.Unmarshal([]byte(got.out), &doc); err != nil || got.code != ExitOK {
		t.Fatalf("exit %d, %v: %s%s", got.code, err, got.out, got.err)
	}
	var names []string
	for _, r := range doc.Items {
		names = append(names, r.Kind+"/"+r.Name)
	}
	if strings.Join(names, " ") != "ThingSpaceApp/broken ThingSpaceApp/flaky CloudAuthorization/photos" {
		t.Errorf("json items %q", names)
	}
	if f := doc.Items[0].LastFailure; f == nil || f.Reason != "CredentialsRejected" || !f.At.Equal(now.Add(-10*time.Minute)) {
		t.Errorf("broken's failure %+v", f)
	}

	empty := newNamespace(t, "empty")
	got = run(t, clk, Env{}, "--kubeconfig", kc, "status", "-n", empty)
	if got.code != ExitOK || got.out != "No ThingSpace resources found in "+empty+" namespace.\n" {
		t.Errorf("empty namespace: exit %d %q %q", got.code, got.out, got.err)
	}
}

// A user who may only list the three kinds sees the table (nothing else is read, Secrets least of all);
// across namespaces the refusal names the verb and resource and the exit code is 1.
func TestStatusWithTheCallersRBAC(t *testing.T) {
	ns, _ := statusFixture(t)
	clk := testingclock.NewFakeClock(now)
	kc := viewerKubeconfig(t, ns)

	got := run(t, clk, Env{}, "--kubeconfig", kc, "status", "-n", ns)
	if got.code != ExitOK || strings.Count(got.out, "\n") != 6 || got.err != "" {
		t.Errorf("viewer in %s: exit %d\n%s%s", ns, got.code, got.out, got.err)
	}
	got = run(t, clk, Env{}, "--kubeconfig", kc, "status", "-A")
	if got.code != ExitFailure || !strings.Contains(got.err, `forbidden: you may not list thingspaceapps.thingspace.credops.io in any namespace`) ||
		!strings.Contains(got.err, `RBAC verb "list" on resource "cloudauthorizations"`) {
		t.Errorf("viewer -A: exit %d\n%s%s", got.code, got.out, got.err)
	}
}
