package controller

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// ThingSpaceApp scenarios of issue 8 that need no time edge (those are in the fakeclock package).

// gatedSim serves a simulator, answering a fixed status on the paths in fail while they are set.
type gatedSim struct {
	mu   sync.Mutex
	fail map[string]int
	url  string
}

func (f *fixture) gated(sim *simulator.Server) *gatedSim {
	g := &gatedSim{fail: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		st, ok := g.fail[r.URL.Path]
		g.mu.Unlock()
		if ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(st)
			_, _ = w.Write([]byte(`{"error":"temporarily_unavailable"}`))
			return
		}
		sim.ServeHTTP(w, r)
	}))
	f.t.Cleanup(srv.Close)
	// Runs before srv.Close: apps with revokeOnDelete still reach it while they go.
	f.t.Cleanup(func() { _ = k8s.DeleteAllOf(ctx, &v1alpha1.ThingSpaceApp{}, client.InNamespace(f.ns)) })
	g.url = srv.URL
	return g
}

func (g *gatedSim) set(path string, status int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if status == 0 {
		delete(g.fail, path)
		return
	}
	g.fail[path] = status
}

// liveToken asks sim for key's token as any other client of the key would: the token the platform
// currently hands out for it.
func liveToken(t *testing.T, url, key, secret string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/api/ts/v1/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(key, secret)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&body) != nil {
		t.Fatalf("token request: %d", resp.StatusCode)
	}
	return body.AccessToken
}

func (f *fixture) waitToken(secretName, what string, within time.Duration, ok func(tok string) bool) string {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for {
		tok, _, _ := f.token(secretName)
		if ok(tok) {
			return tok
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: %s not within %v", secretName, what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventsOn returns the events with reason on the object name.
func (f *fixture) eventsOn(name, reason string) []corev1.Event {
	evs := &corev1.EventList{}
	must(f.t, k8s.List(ctx, evs, client.InNamespace(f.ns)))
	var out []corev1.Event
	for _, e := range evs.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

func (f *fixture) requestRefresh(name, value string) {
	f.t.Helper()
	a := f.get(name)
	patch := client.MergeFrom(a.DeepCopy())
	if a.Annotations == nil {
		a.Annotations = map[string]string{}
	}
	a.Annotations[v1alpha1.RefreshRequestedAnnotation] = value
	must(f.t, k8s.Patch(ctx, a, patch))
}

// Issue 8 scenario 2: when the credentials Secret switches to another key, or the endpoint changes, the
// token read back from the Secret belongs to the old (endpoint, key, secret). It must be neither
// published nor seeded into the broker under the new ones: a change of any of them means a fetch with
// the new ones, and other apps on the new key never adopt the old key's token.
func TestScenario2ChangedKeyOrEndpointFetchesWithTheNewOnes(t *testing.T) {
	f := newFixtureWith(t, time.Hour)
	key2, secret2 := f.key+"-two", "S3cret-two-"+f.ns
	f.sim.SetApp(key2, secret2)
	f.credentials("creds", f.key, f.secret)
	f.app("app", "creds")
	f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	old, _, _ := f.token("app-token")

	// Another key.
	s := &corev1.Secret{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "creds"}, s))
	s.Data[v1alpha1.CredentialsKeyKey], s.Data[v1alpha1.CredentialsKeySecret] = []byte(key2), []byte(secret2)
	must(t, k8s.Update(ctx, s))
	second := f.waitToken("app-token", "a token of the new key", 5*time.Second, func(tok string) bool { return tok != old && tok != "" })
	if want := liveToken(t, f.url, key2, secret2); second != want {
		t.Fatal("the Secret holds a token the new key was not issued")
	}
	// A second app on the new key shares the new key's token, never the old one.
	f.credentials("creds2", key2, secret2)
	f.app("other", "creds2")
	f.waitReady("other", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	if tok, _, _ := f.token("other-token"); tok != second {
		t.Fatal("an app on the new key did not get the new key's token")
	}

	// Another endpoint (a second platform that knows the same key).
	sim2 := simulator.New(simulator.Config{TokenLifetime: time.Hour, Apps: map[string]string{key2: secret2}})
	srv2 := httptest.NewServer(sim2)
	t.Cleanup(srv2.Close)
	a := f.get("app")
	patch := client.MergeFrom(a.DeepCopy())
	a.Spec.Endpoint = srv2.URL
	must(t, k8s.Patch(ctx, a, patch))
	third := f.waitToken("app-token", "a token of the new endpoint", 5*time.Second, func(tok string) bool { return tok != second && tok != "" })
	if !sim2.ValidBearer(third) {
		t.Fatal("the Secret holds a token the new endpoint did not issue")
	}
	if tok, _, _ := f.token("other-token"); tok != second || !f.sim.ValidBearer(second) {
		t.Fatal("the other app on the first endpoint lost its token")
	}
}

// Issue 8 scenario 9: deleting one ThingSpaceApp with revokeOnDelete revoked the token every other app
// on the key still served. The revoke is skipped while another object holds the token, with an event
// saying why; the last holder's deletion still revokes.
func TestScenario9RevokeOnDeleteSparesOtherHolders(t *testing.T) {
	f := newFixtureWith(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	f.app("leaving", "creds", func(a *v1alpha1.ThingSpaceApp) { a.Spec.RevokeOnDelete = true })
	f.app("staying", "creds", func(a *v1alpha1.ThingSpaceApp) { a.Spec.RevokeOnDelete = true })
	f.waitReady("leaving", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	f.waitReady("staying", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	tok, _, _ := f.token("staying-token")

	f.deleteApp("leaving")
	if r := f.revokeCalls(); r != 0 || !f.sim.ValidBearer(tok) {
		t.Fatalf("revokes = %d, token still valid = %v: revoked under another holder", r, f.sim.ValidBearer(tok))
	}
	if evs := f.eventsOn("leaving", v1alpha1.EventRevokeSkipped); len(evs) == 0 || !strings.Contains(evs[0].Message, "staying") {
		t.Fatalf("no RevokeSkipped event naming the other holder: %+v", evs)
	}
	// The last holder revokes.
	f.deleteApp("staying")
	if r := f.revokeCalls(); r != 1 || f.sim.ValidBearer(tok) {
		t.Fatalf("last holder: revokes = %d, token still valid = %v", r, f.sim.ValidBearer(tok))
	}
}

func (f *fixture) deleteApp(name string) {
	f.t.Helper()
	must(f.t, k8s.Delete(ctx, f.get(name)))
	deadline := time.Now().Add(10 * time.Second)
	for !isNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: name}, &v1alpha1.ThingSpaceApp{})) {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s not deleted", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Issue 8 scenario 9: one app's revoke (a refresh request, a renewBefore rotation) ends the token for
// every holder of the key; the others are told, with an event on each.
func TestScenario9RotationTellsTheOtherHolders(t *testing.T) {
	f := newFixtureWith(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	f.app("one", "creds")
	f.app("two", "creds")
	f.waitReady("one", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	f.waitReady("two", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	before, _, _ := f.token("two-token")
	f.requestRefresh("one", "s9")
	f.waitToken("two-token", "the new token", 5*time.Second, func(tok string) bool { return tok != before && f.sim.ValidBearer(tok) })
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs := f.eventsOn("two", v1alpha1.EventRevokedByOtherHolder)
		if len(evs) > 0 {
			if !strings.Contains(evs[0].Message, "one") {
				t.Fatalf("the event does not name who revoked: %q", evs[0].Message)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no event on the other holder of the revoked token")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(f.eventsOn("one", v1alpha1.EventRevokedByOtherHolder)); n != 0 {
		t.Fatalf("%d RevokedByOtherHolder events on the app that revoked", n)
	}
}

// Issue 8 scenario 18: after a successful revoke and a failed issue, the status said Ready with a
// valid-until time for the revoked token.
func TestScenario18RevokedThenFailedIssueIsNotReady(t *testing.T) {
	f := newFixtureWith(t, time.Hour)
	g := f.gated(f.sim)
	f.credentials("creds", f.key, f.secret)
	f.app("app", "creds", func(a *v1alpha1.ThingSpaceApp) { a.Spec.Endpoint = g.url })
	f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	old, _, _ := f.token("app-token")
	g.set("/api/ts/v1/oauth2/token", http.StatusServiceUnavailable)
	f.requestRefresh("app", "s18")
	deadline := time.Now().Add(5 * time.Second)
	for f.revokeCalls() == 0 || f.get("app").Status.FailedRefreshAttempts == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no revoke and failed issue")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if f.sim.ValidBearer(old) {
		t.Fatal("the old token was not revoked")
	}
	a := f.get("app")
	c := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonUpstreamUnavailable {
		t.Fatalf("after revoking the token and failing to get another: Ready %+v", c)
	}
	g.set("/api/ts/v1/oauth2/token", 0)
	f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	if tok, _, _ := f.token("app-token"); tok == old || !f.sim.ValidBearer(tok) {
		t.Fatal("no new token once the upstream answers")
	}
}

// Issue 8 scenario 9: two apps of one key deleted together, both with revokeOnDelete, must not spare
// the token for each other: it is revoked once.
func TestScenario9HoldersDeletedTogetherRevokeOnce(t *testing.T) {
	f := newFixtureWith(t, time.Hour)
	f.credentials("creds", f.key, f.secret)
	for _, n := range []string{"one", "two"} {
		f.app(n, "creds", func(a *v1alpha1.ThingSpaceApp) { a.Spec.RevokeOnDelete = true })
	}
	f.waitReady("one", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	f.waitReady("two", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	tok, _, _ := f.token("one-token")
	must(t, k8s.DeleteAllOf(ctx, &v1alpha1.ThingSpaceApp{}, client.InNamespace(f.ns)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		list := &v1alpha1.ThingSpaceAppList{}
		must(t, k8s.List(ctx, list, client.InNamespace(f.ns)))
		if len(list.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("apps not deleted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := f.revokeCalls(); r != 1 || f.sim.ValidBearer(tok) {
		t.Fatalf("revokes = %d, token still valid = %v; want one revoke", r, f.sim.ValidBearer(tok))
	}
}
