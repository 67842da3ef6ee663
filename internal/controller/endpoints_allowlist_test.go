package controller

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/endpoints"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// suiteAllowedHosts is the suite manager's --allowed-endpoint-hosts: every port of 127.0.0.1, where
// the fixtures' simulators listen. 127.0.0.2 and localhost reach the same machine and are not in it.
var suiteAllowedHosts = endpoints.MustParse("127.0.0.1:*")

// countingListener serves the fixture's simulator on 127.0.0.2, counting every request: were the
// allow-list not applied, the operator's requests would succeed there.
func (f *fixture) countingListener() (string, *atomic.Int32) {
	f.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		f.t.Fatalf("listen on 127.0.0.2: %v", err)
	}
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		f.sim.ServeHTTP(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	f.t.Cleanup(srv.Close)
	return srv.URL, &n
}

// simRequests counts every request the fixture's simulator answered, on any route.
func (f *fixture) simRequests() int {
	n := 0
	for route := range f.sim.Stats().Requests {
		n += f.sim.Stats().Total(route)
	}
	return n
}

// Issue 9 §2: an endpoint whose host is not in --allowed-endpoint-hosts gets nothing, for each kind
// and on deletion; the object says EndpointNotAllowed, and a caBundle for such a host is not even read.
func TestEndpointNotAllowedGetsNothing(t *testing.T) {
	f := newFixture(t)
	far, requests := f.countingListener()
	f.credentials("creds", f.key, f.secret)
	f.uws("uws", "user-"+f.ns, "Passw0rd-"+f.ns)
	// localhost is 127.0.0.1 but not by name: the list is matched without resolving anything.
	byName := strings.Replace(f.url, "127.0.0.1", "localhost", 1)

	f.app("far", "creds", func(a *v1alpha1.ThingSpaceApp) { a.Spec.Endpoint = far; a.Spec.RevokeOnDelete = true })
	f.app("named", "creds", func(a *v1alpha1.ThingSpaceApp) { a.Spec.Endpoint = byName })
	f.app("far-ca", "creds", func(a *v1alpha1.ThingSpaceApp) {
		a.Spec.Endpoint = strings.Replace(far, "http:", "https:", 1)
		a.Spec.CABundle = []byte("not a PEM bundle") // InvalidEndpoint for an allowed host
	})
	f.session("sess", "uws", func(s *v1alpha1.M2MSession) { s.Spec.AppRef.Name = "far" })
	f.cloudAuth("cloud", func(ca *v1alpha1.CloudAuthorization) { ca.Spec.Endpoint = far + "/cloud/1" })

	for _, name := range []string{"far", "named", "far-ca"} {
		a := f.waitReady(name, metav1.ConditionFalse, v1alpha1.ReasonEndpointNotAllowed, 10*time.Second)
		c := a.Status.Conditions[0]
		if !strings.Contains(c.Message, "--allowed-endpoint-hosts") {
			t.Errorf("%s: message %q does not name the flag", name, c.Message)
		}
	}
	if c := f.waitReady("far", metav1.ConditionFalse, v1alpha1.ReasonEndpointNotAllowed, time.Second).Status.Conditions[0]; !strings.Contains(c.Message, "127.0.0.2:") {
		t.Errorf("message %q does not name the host and port", c.Message)
	}
	f.waitSession("sess", metav1.ConditionFalse, v1alpha1.ReasonEndpointNotAllowed, 10*time.Second)
	f.waitCloud("cloud", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonEndpointNotAllowed, 10*time.Second)
	time.Sleep(time.Second) // room for a stray request (a retry, a requeue)
	if n, total := requests.Load(), f.simRequests(); n != 0 || total != 0 {
		t.Fatalf("%d requests reached the listener on 127.0.0.2 and %d the simulator, want none", n, total)
	}
	if ca := f.getCloud("cloud"); ca.Status.ConsentStateHash != "" {
		t.Errorf("a consent offered for a host that is not allowed")
	}

	// Deletion (revokeOnDelete, logoutOnDelete) does not wait for the host either.
	must(t, k8s.Delete(ctx, f.getSession("sess")))
	f.deleteApp("far")
	deadline := time.Now().Add(10 * time.Second)
	for !isNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "sess"}, &v1alpha1.M2MSession{})) {
		if time.Now().After(deadline) {
			t.Fatal("the M2MSession was not deleted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("%d requests reached the listener on deletion, want none", n)
	}
}

// The same host becomes usable once the spec names an allowed one: the reason is not sticky.
func TestEndpointNotAllowedLiftsWithTheSpec(t *testing.T) {
	f := newFixture(t)
	f.credentials("creds", f.key, f.secret)
	f.app("app", "creds", func(a *v1alpha1.ThingSpaceApp) { a.Spec.Endpoint = strings.Replace(f.url, "127.0.0.1", "localhost", 1) })
	f.waitReady("app", metav1.ConditionFalse, v1alpha1.ReasonEndpointNotAllowed, 10*time.Second)
	a := f.get("app")
	a.Spec.Endpoint = f.url
	must(t, k8s.Update(ctx, a))
	f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
}

func TestEndpointsCheck(t *testing.T) {
	e := &Endpoints{Allowed: endpoints.MustParse("thingspace.verizon.com,127.0.0.1:8088")}
	cases := []struct {
		endpoint, reason string
	}{
		{"https://thingspace.verizon.com", ""},
		{"https://thingspace.verizon.com:8443", v1alpha1.ReasonEndpointNotAllowed},
		{"https://evil.example", v1alpha1.ReasonEndpointNotAllowed},
		{"http://127.0.0.1:8088", v1alpha1.ReasonInvalidEndpoint}, // allowed host, but plain http without the flag
		{"http://127.0.0.2:8088", v1alpha1.ReasonEndpointNotAllowed},
		{"https://user:pw@thingspace.verizon.com", v1alpha1.ReasonInvalidEndpoint},
		{"ftp://thingspace.verizon.com", v1alpha1.ReasonInvalidEndpoint},
	}
	for _, tc := range cases {
		err := e.check(tc.endpoint)
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("%s: %v", tc.endpoint, err)
		case tc.reason != "" && (err == nil || endpointReason(err) != tc.reason):
			t.Errorf("%s: %v, want reason %s", tc.endpoint, err, tc.reason)
		case err != nil && strings.Contains(err.Error(), "pw"):
			t.Errorf("%s: the message quotes user info: %v", tc.endpoint, err)
		}
	}
	// A caBundle is not looked at for a host that is not allowed (HTTP is nil: it would panic).
	if _, err := e.ThingSpace("https://evil.example", []byte("junk")); endpointReason(err) != v1alpha1.ReasonEndpointNotAllowed {
		t.Errorf("caBundle for a refused host: %v", err)
	}

	for _, tc := range []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"https://operator.example.com/oauth2/callback", false, true},
		{"http://operator.example.com/oauth2/callback", false, false},
		{"http://127.0.0.1:8082/oauth2/callback", true, true},
		{"ftp://operator.example.com/oauth2/callback", true, false},
		{"https://user:pw@operator.example.com/oauth2/callback", false, false},
	} {
		e := &Endpoints{AllowInsecure: tc.insecure}
		if err := e.CheckCallback(tc.url); (err == nil) != tc.ok || (err != nil && endpointReason(err) != v1alpha1.ReasonInvalidEndpoint) {
			t.Errorf("CheckCallback(%s, insecure=%v) = %v, want ok=%v", tc.url, tc.insecure, err, tc.ok)
		}
	}
	// The reconciler and the callback both get their Cloud client through cloudUpstream, which checks
	// the callback URL before anything is read or sent.
	d := &Deps{Endpoints: &Endpoints{HTTP: upstream.NewHTTPClients(time.Second), Allowed: endpoints.MustParse(endpoints.DefaultHosts)}}
	ca := &v1alpha1.CloudAuthorization{Spec: v1alpha1.CloudAuthorizationSpec{Endpoint: v1alpha1.DefaultCloudEndpoint,
		CallbackURL: "http://operator.example.com/oauth2/callback"}}
	if _, _, _, err := cloudUpstream(ctx, d, ca); !isInvalidEndpoint(err) || !strings.Contains(err.Error(), "callbackURL uses plain http") {
		t.Errorf("plain http callbackURL: %v", err)
	}
}

// The cluster-scoped kinds share the plumbing: a ClusterThingSpaceApp (revokeOnDelete) on a host that
// is not allowed, and a ClusterM2MSession on it, say EndpointNotAllowed, send nothing, and go when
// deleted; a consumer gets no token.
func TestEndpointNotAllowedClusterKinds(t *testing.T) {
	f := newFixtureWith(t, time.Hour)
	f.sim.SetM2MUser(uwsUser, uwsPassword)
	far, requests := f.countingListener()
	all := &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{}}
	app := f.clusterApp(all, func(c *v1alpha1.ClusterThingSpaceApp) { c.Spec.Endpoint = far; c.Spec.RevokeOnDelete = true })
	cm := f.clusterSession(app.Name, all)
	f.consumer("use", app.Name)
	f.waitCluster(app.Name, 10*time.Second, "EndpointNotAllowed", func(c *v1alpha1.ClusterThingSpaceApp) bool {
		r := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
		return r != nil && r.Status == metav1.ConditionFalse && r.Reason == v1alpha1.ReasonEndpointNotAllowed
	})
	f.waitClusterSession(cm.Name, metav1.ConditionFalse, v1alpha1.ReasonEndpointNotAllowed)
	time.Sleep(time.Second)
	if tok, _, ok := f.token("use-token"); ok || tok != "" {
		t.Error("a consumer of a ClusterThingSpaceApp on a host that is not allowed got a token")
	}
	for _, obj := range []client.Object{cm, app} {
		must(t, k8s.Delete(ctx, obj))
		deadline := time.Now().Add(10 * time.Second)
		for !isNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)) {
			if time.Now().After(deadline) {
				t.Fatalf("%s was not deleted", obj.GetName())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if n, total := requests.Load(), f.simRequests(); n != 0 || total != 0 {
		t.Fatalf("%d requests reached the listener on 127.0.0.2 and %d the simulator, want none", n, total)
	}
}
