package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// --- 8. Leak scan ---

// TestCloudLeakScan drives the paths where secrets tend to leak, failures with upstream error bodies at
// hand: a code exchange refused for a wrong client secret, an expired code, then a consent and a
// refresh. The manager's log, the Events and the status must never show a code, an access or refresh
// token, or a client secret (right or wrong); every cloud test runs the same scan when it ends, and the
// suite runs it over everything at the end.
func TestCloudLeakScan(t *testing.T) {
	t.Parallel()
	const codeLife = time.Second
	wrong := "wrong-secret-" + randHex(16)
	e := newCloudEnv(t, cloudOpts{code: codeLife, credsSecret: wrong})
	sensitive.AddCredentials(e.key, wrong)

	// A wrong client secret: the exchange is refused and a new URL offered.
	first := e.waitURL()
	b := e.browse(first)
	if b.status < 400 || b.status == http.StatusOK {
		t.Errorf("callback with a code the upstream refuses to exchange: status %d, want an error page", b.status)
	}
	e.checkNoTokenIn("the page after a refused exchange", b, cloudTokens{})
	if strings.Contains(b.body, wrong) {
		t.Errorf("the page after a refused exchange holds the client secret in use")
	}
	second := e.waitURL(first)
	if n := e.tokenRequests(http.StatusUnauthorized); n != 1 {
		t.Errorf("%d refused token requests, want 1 (the exchange with the wrong secret): %v", n, stats(t, e.sim))
	}

	// The right secret, but the code has expired by the time the browser reaches the callback.
	creds := &corev1.Secret{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: e.ns, Name: "creds"}, creds); err != nil {
		t.Fatal(err)
	}
	creds.Data[v1alpha1.CredentialsKeySecret] = []byte(e.secret)
	if err := k8s.Update(t.Context(), creds); err != nil {
		t.Fatalf("fix the credentials: %v", err)
	}
	start, err := e.browser.Get(t.Context(), second)
	if err != nil || start.Location == nil {
		t.Fatalf("start: status %d, %v", start.Status, err)
	}
	loc, err := e.sim.CloudAuthorize(t.Context(), start.Location.String())
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	e.add("a Cloud authorization code", loc.Query().Get("code"))
	time.Sleep(codeLife + 500*time.Millisecond)
	page, err := e.browser.Get(t.Context(), loc.String())
	if err != nil {
		t.Fatal(err)
	}
	status, body := page.Status, page.Body
	if status < 400 {
		t.Errorf("callback with an expired code: status %d, want an error page", status)
	}
	e.checkNoTokenIn("the page after an expired code", browsed{callback: loc, status: status, body: body}, cloudTokens{})
	third := e.waitURL(first, second)
	ca := e.get()
	if !hasCondition(ca, v1alpha1.ConditionAuthorized, metav1.ConditionFalse, "") {
		t.Errorf("Authorized not False after a failed exchange: %s", describeCloud(ca))
	}

	// A consent and a refresh, to have tokens that could leak.
	if ok := e.browse(third); ok.status != http.StatusOK {
		t.Fatalf("consent: status %d: %.300s", ok.status, ok.body)
	}
	e.waitReady()
	first1 := e.tokens()
	e.requestRefresh("leak-scan")
	e.wait(cloudWait, "refresh request leak-scan acted on", func(ca *v1alpha1.CloudAuthorization) bool {
		return ca.Status.ObservedRefreshRequest == "leak-scan"
	})
	e.waitReady()
	if now := e.tokens(); now.refresh == first1.refresh {
		t.Errorf("the requested refresh did not rotate the refresh token")
	}
	// One invalid_grant: the expired code. The wrong secret's 401 is invalid_client.
	if st := e.stats(); st.RefreshTokenReuses != 0 || st.CodeReuses != 0 || st.InvalidGrants != 1 {
		t.Errorf("cloud stats %+v: want no reuse and one invalid_grant (the expired code)", st)
	}
	time.Sleep(500 * time.Millisecond) // let the log catch up
	if e.leaks.Count("a Cloud authorization code") < 2 || e.leaks.Count("a Cloud refresh token") < 2 {
		t.Fatalf("too few values recorded for the scan to mean anything")
	}
	e.scanLeaks()
}
