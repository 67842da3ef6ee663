package controller

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Issue 8 scenario 17: a label-less Secret at the grant Secret's name that happens to hold a
// refresh_token was adopted (its other keys deleted, an ownerRef making it garbage with the
// CloudAuthorization). Now it is left exactly as it is, with Ready=False SecretConflict, until its owner
// annotates it v1alpha1.AdoptAnnotation="true"; then it is adopted and refreshed.
func TestIssue8Scenario17NoAdoptionWithoutConsent(t *testing.T) {
	f := newCloudFixture(t, time.Hour)
	f.sim.SetCloudApp(f.key, f.secret, "https://sdk.example/Callback")
	rt := sdkRefreshToken(t, f, "https://sdk.example/Callback")
	f.sim.SetCloudApp(f.key, f.secret, callbackURL)
	f.credentials("creds", f.key, f.secret)
	data := map[string][]byte{KeyRefreshToken: []byte(rt), "config.json": []byte(`{"other":"data"}`)}
	must(t, k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "photos-grant", Annotations: map[string]string{"note": "mine"}},
		Data:       data,
	}))
	f.cloudAuth("photos")
	f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSecretConflict, 10*time.Second)
	time.Sleep(time.Second)
	s := f.cloudSecret("photos-grant")
	if len(s.OwnerReferences) != 0 || len(s.Labels) != 0 || !maps.EqualFunc(s.Data, data, func(a, b []byte) bool { return string(a) == string(b) }) ||
		len(s.Annotations) != 1 {
		t.Fatalf("a foreign Secret was changed: labels %v, annotations %v, owners %v, keys %d", s.Labels, s.Annotations, s.OwnerReferences, len(s.Data))
	}
	if got := f.sim.CloudStats(); got.Refreshes != 0 {
		t.Fatalf("the foreign Secret's refresh token was used: %+v", got)
	}

	// Its owner hands it over.
	orig := s.DeepCopy()
	s.Annotations[v1alpha1.AdoptAnnotation] = "true"
	must(t, k8s.Patch(context.Background(), s, client.MergeFrom(orig)))
	f.waitCloud("photos", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	s = f.cloudSecret("photos-grant")
	if metav1.GetControllerOf(s) == nil || s.Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedByValue || string(s.Data[KeyRefreshToken]) == rt {
		t.Fatalf("the handed-over Secret was not adopted and refreshed: labels %v", s.Labels)
	}
	if got := f.sim.CloudStats(); got.Refreshes != 1 || got.RefreshTokenReuses != 0 {
		t.Fatalf("adoption: %+v", got)
	}
	f.checkPublished("photos")
}

// sdkRefreshToken runs the consent and code exchange by hand against the simulator.
func sdkRefreshToken(t *testing.T, f *fixture, callback string) string {
	t.Helper()
	q := url.Values{"client_id": {f.key}, "redirect_uri": {callback}, "response_type": {"code"}, "state": {"x"}}
	back, err := url.Parse(browserConsent(t, f.url+"/cloud/1/oauth2/authorize?"+q.Encode()))
	must(t, err)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {callback}}
	req, _ := http.NewRequest(http.MethodPost, f.url+"/cloud/1/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(f.key, f.secret)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	i := strings.Index(string(b), `"refresh_token":"`)
	if resp.StatusCode != http.StatusOK || i < 0 {
		t.Fatalf("exchange answered %d", resp.StatusCode)
	}
	rest := string(b)[i+len(`"refresh_token":"`):]
	rt := rest[:strings.IndexByte(rest, '"')]
	sawSecret(rt)
	return rt
}
