package controller

import (
	"net/http"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// Issue 11 §1 on the cluster kinds (the core is runSession's): a ClusterThingSpaceApp with a standby
// key set hands over (9s tokens, 3s before expiry) to another key's token while the old one stays
// valid, and the ClusterM2MSession logs in once with it, on a platform that
// ties sessions to their token: its Secret and its consumers' copies change both headers together, and
// the old pair keeps working. The suite's leak check covers what the handover logs and records.
func TestClusterSessionHandover(t *testing.T) {
	f := newFixtureConfig(t, simulator.Config{TokenLifetime: 9 * time.Second, M2MSessionTiedToBearer: true})
	f.sim.SetM2MUser(uwsUser, uwsPassword)
	key2, secret2 := f.key+"-standby", f.secret+"-standby"
	f.sim.SetApp(key2, secret2)
	standby := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: clusterNamespace, Name: f.ns + "-standby"},
		Data: map[string][]byte{"key": []byte(key2), "secret": []byte(secret2)}}
	must(t, k8s.Create(ctx, standby))
	t.Cleanup(func() { _ = k8s.Delete(ctx, standby) })
	app := f.clusterApp(&v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{}}, func(c *v1alpha1.ClusterThingSpaceApp) {
		c.Spec.StandbyCredentialsSecretRef = &v1alpha1.LocalSecretReference{Name: standby.Name}
		c.Spec.HandoverBefore = &metav1.Duration{Duration: 3 * time.Second}
	})
	f.waitCluster(app.Name, 10*time.Second, "Ready", clusterReady)
	// Keep-alives every 2s (the suite's sessions idle out after 3s).
	cm := f.clusterSession(app.Name, &v1alpha1.AllowedNamespaces{Names: []string{f.ns}}, func(c *v1alpha1.ClusterM2MSession) {
		c.Spec.KeepAlive.Interval = &metav1.Duration{Duration: 2 * time.Second}
	})
	f.sessionConsumer("s", cm.Name)
	f.waitClusterSession(cm.Name, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.waitConsumer("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid)

	pairOf := func(ns, name string) [2]string {
		s := secretIn(t, ns, name)
		if s == nil {
			return [2]string{}
		}
		return [2]string{string(s.Data[KeyAccessToken]), string(s.Data[KeySessionToken])}
	}
	works := func(p [2]string) bool {
		req, _ := http.NewRequest(http.MethodGet, f.url+"/api/m2m/v1/accounts/0000123456-00001", nil)
		req.Header.Set("Authorization", "Bearer "+p[0])
		req.Header.Set(simulator.M2MTokenHeader, p[1])
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	first := pairOf(clusterNamespace, cm.Spec.SecretName)
	if !works(first) {
		t.Fatal("the first pair does not work")
	}
	// Every pair the cluster session's Secret holds from here on, from a watch.
	w, err := watcher.Watch(ctx, &corev1.SecretList{}, client.InNamespace(clusterNamespace), client.MatchingFields{"metadata.name": cm.Spec.SecretName})
	must(t, err)
	var mu sync.Mutex
	var seen [][2]string
	go func() {
		for ev := range w.ResultChan() {
			if s, ok := ev.Object.(*corev1.Secret); ok {
				mu.Lock()
				seen = append(seen, [2]string{string(s.Data[KeyAccessToken]), string(s.Data[KeySessionToken])})
				mu.Unlock()
			}
		}
	}()

	// The handover: the app's Secret gets the other key's token; the old one is not revoked.
	var second [2]string
	f.eventually("the cluster session on the new token", 10*time.Second, func() bool {
		tok := secretIn(t, clusterNamespace, app.Spec.SecretName)
		second = pairOf(clusterNamespace, cm.Spec.SecretName)
		return tok != nil && string(tok.Data[KeyAccessToken]) != first[0] && second[0] == string(tok.Data[KeyAccessToken])
	})
	if second[1] == first[1] || !works(second) || !works(first) {
		t.Fatalf("new session %v, new pair works %v, old pair works %v: want a new working pair and the old one kept",
			second[1] != first[1], works(second), works(first))
	}
	f.eventually("the consumer's copy of the new pair", 10*time.Second, func() bool { return pairOf(f.ns, "s-session") == second })
	// No other login (the next handover is 6s away), and never the new token with the old session (a
	// tied platform refuses that pair), though the keep-alive's SessionToken error would repair it.
	time.Sleep(time.Second)
	w.Stop()
	mu.Lock()
	for _, p := range seen {
		if p != first && p != second {
			t.Fatal("the cluster session's Secret held a pair that mixes the handover's headers")
		}
	}
	mu.Unlock()
	if info, _ := f.sim.M2MUser(uwsUser); info.Logins != 2 {
		t.Fatalf("%d logins, want 2 (one for the handover)", info.Logins)
	}
	// The login came with the handover, not after the platform refused the old session with the new
	// token (a keep-alive answered SessionToken.Invalid).
	if n := f.sim.Stats().Count("GET /api/m2m/v1/accounts/{accountName}", http.StatusBadRequest); n != 0 {
		t.Fatalf("%d session calls refused", n)
	}
	got := &v1alpha1.ClusterM2MSession{}
	must(t, k8s.Get(ctx, client.ObjectKey{Name: cm.Name}, got))
	if got.Status.LoginTokenDigest != policy.TokenDigest(second[0]) || got.Status.LoginTokenExpiresAt == nil {
		t.Fatalf("status records login token %q (expires %v), want the new token's digest", got.Status.LoginTokenDigest, got.Status.LoginTokenExpiresAt)
	}
}
