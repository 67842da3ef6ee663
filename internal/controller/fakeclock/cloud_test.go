package fakeclock

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// cloudGrant consents and exchanges the code by hand (as the SDK would) and returns a refresh token.
func (f *fixture) cloudGrant(callback string) string {
	f.t.Helper()
	f.sim.SetCloudApp(f.key, f.secret, callback)
	q := url.Values{"client_id": {f.key}, "redirect_uri": {callback}, "response_type": {"code"}, "state": {"x"}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(f.url + "/cloud/1/oauth2/authorize?" + q.Encode())
	must(f.t, err)
	_ = resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	must(f.t, err)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {callback}}
	req, _ := http.NewRequest(http.MethodPost, f.url+"/cloud/1/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(f.key, f.secret)
	resp, err = http.DefaultClient.Do(req)
	must(f.t, err)
	defer resp.Body.Close()
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	must(f.t, json.NewDecoder(resp.Body).Decode(&body))
	if body.RefreshToken == "" {
		f.t.Fatalf("exchange answered %d without a refresh token", resp.StatusCode)
	}
	return body.RefreshToken
}

// Issue 8 scenario 10: refreshes failing day after day used to go unreported until the refresh token
// died at 14 days. Once they are still failing past the keep-alive time (7 days after the last
// refresh), Authorized says RefreshTokenAtRisk with the deadline, a warning event is emitted once, and
// a refresh that succeeds clears it.
func TestIssue8Scenario10KeepAliveDeadlineAtRiskOnTheFakeClock(t *testing.T) {
	f := newFixture(t, simulator.Config{CloudAccessTokenLifetime: time.Hour})
	rt := f.cloudGrant("https://sdk.example/Callback")
	f.credentials("creds", map[string]string{v1alpha1.CredentialsKeyKey: f.key, v1alpha1.CredentialsKeySecret: f.secret})
	f.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "photos-tokens", Annotations: map[string]string{v1alpha1.AdoptAnnotation: "true"}},
		Data: map[string][]byte{v1alpha1.SecretKeyRefreshToken: []byte(rt)}})
	f.create(&v1alpha1.CloudAuthorization{ObjectMeta: metav1.ObjectMeta{Name: "photos"},
		Spec: v1alpha1.CloudAuthorizationSpec{Endpoint: f.url + "/cloud/1", CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: "creds"},
			CallbackURL: "https://sdk.example/Callback", SecretName: "photos-tokens"}})
	ca := &v1alpha1.CloudAuthorization{}
	f.waitCondition("photos", ca, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	f.settle(300 * time.Millisecond)

	// Verizon fails every refresh from now on; a day of failures is no risk yet.
	f.sim.SetFaults(simulator.Faults{Rate: 1, Status: http.StatusServiceUnavailable})
	for range 24 {
		f.step(time.Hour)
		f.settle(100 * time.Millisecond)
	}
	f.waitCondition("photos", ca, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable)
	if c := f.condition("photos", ca, v1alpha1.ConditionAuthorized); c.Reason != v1alpha1.ReasonGranted || f.events("photos", v1alpha1.ReasonRefreshTokenAtRisk) != 0 {
		t.Fatalf("at risk after one day: %+v", c)
	}
	// Past the keep-alive time (7 days), still failing.
	for range 7 {
		f.step(24 * time.Hour)
		f.settle(100 * time.Millisecond)
	}
	f.waitCondition("photos", ca, v1alpha1.ConditionAuthorized, metav1.ConditionTrue, v1alpha1.ReasonRefreshTokenAtRisk)
	if c := f.condition("photos", ca, v1alpha1.ConditionAuthorized); !strings.Contains(c.Message, "dies unused at") {
		t.Fatalf("message %q", c.Message)
	}
	f.eventually("a RefreshTokenAtRisk event", 10*time.Second, func() bool { return f.events("photos", v1alpha1.ReasonRefreshTokenAtRisk) == 1 })
	f.step(time.Hour)
	f.settle(200 * time.Millisecond)
	if n := f.events("photos", v1alpha1.ReasonRefreshTokenAtRisk); n != 1 {
		t.Fatalf("%d at-risk events, want exactly one", n)
	}

	// Verizon recovers before the 14 days are up: the next retry refreshes and the warning is gone.
	f.sim.SetFaults(simulator.Faults{})
	f.step(10 * time.Minute)
	f.waitCondition("photos", ca, v1alpha1.ConditionAuthorized, metav1.ConditionTrue, v1alpha1.ReasonGranted)
	f.waitCondition("photos", ca, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	if got := f.sim.CloudStats(); got.RefreshTokenReuses != 0 || got.InvalidGrants != 0 {
		t.Fatalf("%+v", got)
	}
}
