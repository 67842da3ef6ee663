package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/consent"
	"github.com/credops/thingspace-operator/test/harness"
)

// CloudAuthorization end to end: a person's consent in a browser (played by an http.Client following
// the simulator's redirect to the manager's callback), rotating refresh tokens, and the promise that a
// refresh token is never sent twice, across a SIGTERM or a SIGKILL of the manager in the middle of a
// refresh. Every count comes from the simulator's admin stats; every token is checked against the
// simulator's protected GET /cloud/1/account.

const (
	// cloudName and cloudSecretName are the CloudAuthorization of a cloud test and the Secret it writes.
	cloudName       = "ca"
	cloudSecretName = "ca-tokens"
	// cloudGrantName is the grant Secret (refresh token), cloudConsentName the consent link's.
	cloudGrantName   = cloudName + v1alpha1.GrantSecretSuffix
	cloudConsentName = cloudName + v1alpha1.ConsentSecretSuffix
	// inFlightBound is how long after its refresh-started-at marker a refresh counts as interrupted.
	inFlightBound = upstreamTimeout + 5*time.Second
	// cloudWait bounds the waits for a reconcile outcome: generous, for a loaded machine.
	cloudWait = 20 * time.Second
)

// cloudEnv is one Cloud test's own simulator (its counts are the test's alone) with one Verizon Cloud
// app registered with the manager's callback URL, a namespace, the app's credentials Secret "creds" and
// a CloudAuthorization "ca" writing Secret "ca-tokens".
type cloudEnv struct {
	t           *testing.T
	sim         *harness.Sim
	ns          string
	key, secret string
	// leaks holds this test's codes, tokens and client secret; they also go to the suite's check.
	leaks harness.Sensitive
	// scanned is set once scanLeaks ran, so the cleanup does not report the same findings again.
	scanned bool
	// browser is the person's: its cookies carry a consent from the start endpoint to the callback.
	browser *harness.Browser
}

// cloudOpts shape a cloud test's simulator and CloudAuthorization.
type cloudOpts struct {
	// access is the simulator's access token lifetime; zero means an hour.
	access time.Duration
	// code is the simulator's authorization code lifetime; zero means its default (5m).
	code time.Duration
	// credsSecret is the client secret put in the credentials Secret; empty means the right one.
	credsSecret string
	// mutate changes the CloudAuthorization before it is created.
	mutate func(*v1alpha1.CloudAuthorization)
}

// newCloudEnv starts the simulator, the namespace, the credentials and the CloudAuthorization. A
// cleanup scans the manager's log, the namespace's Events and the CloudAuthorization's status for this
// test's sensitive values.
func newCloudEnv(t *testing.T, o cloudOpts) *cloudEnv {
	t.Helper()
	e := &cloudEnv{t: t, key: "cloud-" + randHex(8), secret: "cloud-secret-" + randHex(16), browser: harness.NewBrowser()}
	e.leaks.AddCredentials(e.key, e.secret)
	sensitive.AddCredentials(e.key, e.secret)
	if o.access == 0 {
		o.access = time.Hour
	}
	e.sim = startSim(t, harness.SimConfig{
		CloudApps:                map[string]harness.CloudApp{e.key: {Secret: e.secret, CallbackURL: mgr.CallbackURL}},
		CloudAccessTokenLifetime: o.access,
		CloudCodeLifetime:        o.code,
	})
	e.ns = newNamespace(t)
	// Runs before newNamespace's cleanup deletes the CloudAuthorization.
	t.Cleanup(e.scanLeaks)
	credsSecret := e.secret
	if o.credsSecret != "" {
		credsSecret = o.credsSecret
		e.leaks.AddCredentials(e.key, credsSecret)
	}
	createCredentials(t, e.ns, "creds", e.key, credsSecret)
	ca := &v1alpha1.CloudAuthorization{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: cloudName},
		Spec: v1alpha1.CloudAuthorizationSpec{
			Endpoint:             e.sim.URL + "/cloud/1",
			CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: "creds"},
			CallbackURL:          mgr.CallbackURL,
			SecretName:           cloudSecretName,
		},
	}
	if o.mutate != nil {
		o.mutate(ca)
	}
	if err := k8s.Create(t.Context(), ca); err != nil {
		t.Fatalf("create CloudAuthorization: %v", err)
	}
	e.watchWorkloadSecret(ca.Spec.SecretName)
	return e
}

// add records a sensitive value for this test's scan and the suite's.
func (e *cloudEnv) add(what, v string) {
	e.leaks.Add(what, v)
	sensitive.Add(what, v)
}

// headerShapes are the findings of Sensitive.Scan that match a shape rather than a recorded value.
var headerShapes = map[string]bool{"an Authorization header": true, "a Basic credential": true, "a Bearer credential": true}

// scanLeaks fails the test when one of its codes, tokens or its client secret is in the manager's log,
// an Event of its namespace or its CloudAuthorization's status. Header shapes in the log are left to the
// suite's check (the log is shared); in this namespace's Events and status they are this test's.
func (e *cloudEnv) scanLeaks() {
	if e.scanned {
		return
	}
	e.scanned = true
	t := e.t
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var found []harness.Leak
	for _, l := range e.leaks.Scan("the manager log", mgr.Logs()) {
		if !headerShapes[l.What] {
			found = append(found, l)
		}
	}
	events := &corev1.EventList{}
	if err := k8s.List(ctx, events, client.InNamespace(e.ns)); err != nil {
		t.Errorf("leak scan: list events: %v", err)
	}
	for _, ev := range events.Items {
		b, _ := json.Marshal(ev)
		found = append(found, e.leaks.Scan(fmt.Sprintf("Event %s (%s)", ev.Name, ev.Reason), string(b))...)
	}
	ca := &v1alpha1.CloudAuthorization{}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: cloudName}, ca); err == nil {
		b, _ := json.Marshal(ca.Status)
		found = append(found, e.leaks.Scan("the CloudAuthorization's status", string(b))...)
	}
	for _, l := range found {
		t.Errorf("leak: %s", l)
	}
}

func (e *cloudEnv) get() *v1alpha1.CloudAuthorization {
	e.t.Helper()
	ca := &v1alpha1.CloudAuthorization{}
	if err := k8s.Get(e.t.Context(), types.NamespacedName{Namespace: e.ns, Name: cloudName}, ca); err != nil {
		e.t.Fatalf("get CloudAuthorization: %v", err)
	}
	return ca
}

// wait polls the CloudAuthorization until ok holds.
func (e *cloudEnv) wait(timeout time.Duration, what string, ok func(*v1alpha1.CloudAuthorization) bool) *v1alpha1.CloudAuthorization {
	e.t.Helper()
	var last *v1alpha1.CloudAuthorization
	err := harness.WaitFor(e.t.Context(), timeout, 50*time.Millisecond, func() (bool, error) {
		ca := &v1alpha1.CloudAuthorization{}
		if err := k8s.Get(e.t.Context(), types.NamespacedName{Namespace: e.ns, Name: cloudName}, ca); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		last = ca
		return ok(ca), nil
	})
	if err != nil {
		e.t.Fatalf("CloudAuthorization %s/%s: waiting for %s: %v; last status: %s", e.ns, cloudName, what, err, describeCloud(last))
	}
	return last
}

// hasCondition reports whether ca has condition typ with status and reason (any reason when empty) for
// its current generation.
func hasCondition(ca *v1alpha1.CloudAuthorization, typ string, status metav1.ConditionStatus, reason string) bool {
	c := meta.FindStatusCondition(ca.Status.Conditions, typ)
	return c != nil && c.Status == status && (reason == "" || c.Reason == reason) && c.ObservedGeneration == ca.Generation
}

// waitAuthorized waits until Authorized has status and reason.
func (e *cloudEnv) waitAuthorized(status metav1.ConditionStatus, reason string, timeout time.Duration) *v1alpha1.CloudAuthorization {
	e.t.Helper()
	return e.wait(timeout, fmt.Sprintf("Authorized=%s reason %s", status, reason), func(ca *v1alpha1.CloudAuthorization) bool {
		return hasCondition(ca, v1alpha1.ConditionAuthorized, status, reason)
	})
}

// waitReady waits until Authorized=True (Granted) and Ready=True (TokenValid).
func (e *cloudEnv) waitReady() *v1alpha1.CloudAuthorization {
	e.t.Helper()
	return e.wait(cloudWait, "Authorized=True Granted and Ready=True TokenValid", func(ca *v1alpha1.CloudAuthorization) bool {
		return hasCondition(ca, v1alpha1.ConditionAuthorized, metav1.ConditionTrue, v1alpha1.ReasonGranted) &&
			hasCondition(ca, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	})
}

// waitURL waits for a consent link (in the consent Secret, its consent live in status) other than any
// of not, and returns it. Its start token and state are recorded as sensitive.
func (e *cloudEnv) waitURL(not ...string) string {
	e.t.Helper()
	var link string
	e.wait(cloudWait, "a new consent link", func(ca *v1alpha1.CloudAuthorization) bool {
		u, err := harness.ConsentLink(e.t.Context(), k8s, client.ObjectKeyFromObject(ca))
		tok := consent.TokenOf(u)
		if err != nil || tok == "" || consent.Hash(consent.State(tok)) != ca.Status.ConsentStateHash {
			return false
		}
		for _, n := range not {
			if u == n {
				return false
			}
		}
		link = u
		return true
	})
	tok := consent.TokenOf(link)
	e.add("a consent link's start token", tok)
	e.add("a consent state", consent.State(tok))
	return link
}

func describeCloud(ca *v1alpha1.CloudAuthorization) string {
	if ca == nil {
		return "(not found)"
	}
	var b strings.Builder
	for _, typ := range []string{v1alpha1.ConditionAuthorized, v1alpha1.ConditionReady} {
		c := meta.FindStatusCondition(ca.Status.Conditions, typ)
		if c == nil {
			fmt.Fprintf(&b, "no %s condition; ", typ)
			continue
		}
		fmt.Fprintf(&b, "%s=%s reason=%s message=%q observedGeneration=%d/%d; ", typ, c.Status, c.Reason, c.Message, c.ObservedGeneration, ca.Generation)
	}
	fmt.Fprintf(&b, "consent offered=%v consentSecretName=%q failedRefreshAttempts=%d observedRefreshRequest=%q",
		ca.Status.ConsentStateHash != "", ca.Status.ConsentSecretName, ca.Status.FailedRefreshAttempts, ca.Status.ObservedRefreshRequest)
	return b.String()
}

// browsed is what a browser opening a consent link saw.
type browsed struct {
	// authorize is Verizon's authorize URL the start endpoint redirected to; nil when it did not.
	authorize *url.URL
	// callback is the manager URL the simulator redirected to (with code or error, and state); nil when
	// there was no redirect.
	callback *url.URL
	// status and body are the final page's.
	status int
	body   string
}

// browse opens the consent link u in the person's browser: the manager's start endpoint sets its
// cookie and redirects to the simulator, which redirects back to the manager's callback, and the page
// is read. The authorization code in the redirect is recorded as sensitive.
func (e *cloudEnv) browse(u string) browsed { return e.browseWith(e.browser, u) }

// browseWith is browse in browser b.
func (e *cloudEnv) browseWith(b *harness.Browser, u string) browsed {
	e.t.Helper()
	var out browsed
	page := func(p harness.Page, err error) harness.Page {
		e.t.Helper()
		if err != nil {
			e.t.Fatalf("browse: %v", err) // never quotes a URL
		}
		out.status, out.body = p.Status, p.Body
		return p
	}
	// The consent link redirects to Verizon's authorize URL, which redirects to the callback (with a
	// code or an error); an authorize URL opened directly skips the first step.
	next := u
	for range 3 {
		p := page(b.Get(e.t.Context(), next))
		if p.Location == nil {
			return out
		}
		if q := p.Location.Query(); q.Has("code") || q.Has("error") {
			out.callback = p.Location
			e.add("a Cloud authorization code", q.Get("code"))
			page(b.Get(e.t.Context(), p.Location.String()))
			return out
		}
		out.authorize = p.Location
		next = p.Location.String()
	}
	e.t.Fatal("browse: too many redirects")
	return out
}

// watchWorkloadSecret fails the test if the workload's Secret ever holds a refresh token, at any
// moment of the test (a watch sees every version written).
func (e *cloudEnv) watchWorkloadSecret(name string) {
	e.t.Helper()
	wc, err := client.NewWithWatch(cp.Config, client.Options{Scheme: cp.Scheme})
	if err != nil {
		e.t.Fatalf("watch client: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := wc.Watch(ctx, &corev1.SecretList{}, client.InNamespace(e.ns), client.MatchingFields{"metadata.name": name})
	if err != nil {
		cancel()
		e.t.Fatalf("watch Secret %s: %v", name, err)
	}
	done := make(chan int)
	go func() {
		seen := 0
		defer func() { done <- seen }()
		for ev := range w.ResultChan() {
			if s, ok := ev.Object.(*corev1.Secret); ok {
				if _, has := s.Data[v1alpha1.SecretKeyRefreshToken]; has {
					e.t.Errorf("the workload's Secret %s held a refresh token (resourceVersion %s)", name, s.ResourceVersion)
				}
				seen++
			}
		}
	}()
	e.t.Cleanup(func() {
		w.Stop()
		cancel()
		<-done
	})
}

// callback sends a GET to the manager's callback with q, as a browser (or an attacker) would, and
// returns the status and page.
func callback(t *testing.T, q url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, mgr.CallbackURL+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET the callback: request failed")
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}
