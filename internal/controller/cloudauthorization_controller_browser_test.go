package controller

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/consent"
	"github.com/credops/thingspace-operator/test/harness"
)

// The person's side of a consent in the envtests: the link from the consent Secret, a browser that
// keeps the start endpoint's cookie, and what the workload's Secret must hold afterwards.

// waitURL waits for a consent link (in the consent Secret, with a live consent in status) other than
// not.
func (f *fixture) waitURL(name, not string) string {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		u, err := harness.ConsentLink(context.Background(), k8s, client.ObjectKey{Namespace: f.ns, Name: name})
		must(f.t, err)
		if tok := consent.TokenOf(u); u != "" && u != not && consent.Hash(consent.State(tok)) == f.getCloud(name).Status.ConsentStateHash {
			sawSecret(tok, consent.State(tok))
			return u
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.t.Fatalf("%s/%s: no new consent link", f.ns, name)
	return ""
}

// noFollow is the tests' browser: it keeps cookies (the start endpoint's binding cookie; their names
// differ per consent, so one jar serves every test) and follows no redirect by itself.
var noFollow = func() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Timeout: 10 * time.Second, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}()

// browserConsent plays the browser from a consent link (the operator's start endpoint, then Verizon's
// consent page; or Verizon's authorize URL directly) and returns where Verizon sends it back to.
func browserConsent(t *testing.T, link string) string {
	t.Helper()
	next := link
	for range 3 {
		resp, err := noFollow.Get(next)
		must(t, err)
		_ = resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || loc == "" {
			t.Fatalf("%s answered %d, Location %q", resp.Request.URL.Path, resp.StatusCode, loc)
		}
		u, err := url.Parse(loc)
		must(t, err)
		if q := u.Query(); q.Has("code") || q.Has("error") {
			sawSecret(q.Get("code"))
			return loc
		}
		next = loc
	}
	t.Fatal("no redirect back to the callback")
	return ""
}

// land opens the callback as the browser would (with its cookies) and returns the status and page.
func land(t *testing.T, loc string) (int, string) {
	t.Helper()
	resp, err := noFollow.Get(loc)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// landElsewhere opens the callback from another browser (no cookies).
func landElsewhere(t *testing.T, loc string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(loc)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// checkPublished checks that the workload's Secret of name holds the grant's access token, type and
// expiry, and nothing else: no refresh token, no refresh bookkeeping. It returns the workload's Secret.
func (f *fixture) checkPublished(name string) *corev1.Secret {
	f.t.Helper()
	var w, g *corev1.Secret
	deadline := time.Now().Add(10 * time.Second)
	for {
		w, g = f.cloudSecret(name+"-tokens"), f.cloudSecret(name+"-grant")
		if w != nil && g != nil && string(w.Data[KeyAccessToken]) == string(g.Data[KeyAccessToken]) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if w == nil || g == nil {
		f.t.Fatalf("%s: workload Secret %v, grant Secret %v", name, w != nil, g != nil)
	}
	if got := keys(w.Data); len(got) != 3 || len(w.Data[KeyAccessToken]) == 0 || string(w.Data[KeyExpiresAt]) != string(g.Data[KeyExpiresAt]) ||
		string(w.Data[KeyTokenType]) != string(g.Data[KeyTokenType]) {
		f.t.Fatalf("%s-tokens: keys %v, want access_token, token_type and expires_at of the grant", name, got)
	}
	for _, a := range []string{v1alpha1.RefreshStartedAnnotation, v1alpha1.RefreshedAtAnnotation} {
		if _, ok := w.Annotations[a]; ok {
			f.t.Fatalf("%s-tokens carries %s", name, a)
		}
	}
	return w
}
