package cli

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

const consentLink = "https://operator.example/oauth2/start?state=s1"

// consentFixture creates CloudAuthorizations awaiting consent (their links in consent Secrets),
// authorized, without a link, with an expired link, with a link that is not http(s) and with a consent
// Secret that is gone.
func consentFixture(t *testing.T) (string, string) {
	ns := newNamespace(t, "consent")
	pending := func(reason string) []metav1.Condition {
		return []metav1.Condition{cond("Authorized", "False", reason, "A person must open the consent link", 5*time.Minute),
			cond("Ready", "False", reason, "A person must open the consent link", 5*time.Minute)}
	}
	offer := func(name, link string, expires time.Duration) {
		create(t, newCloud(ns, name, nil, v1alpha1.CloudAuthorizationStatus{Conditions: pending("AuthorizationPending"),
			ConsentSecretName: name + "-consent", ConsentStateHash: "h", ConsentExpiresAt: ptr(mt(expires))}))
		if link != "" {
			if err := cp.Client.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-consent"},
				Data: map[string][]byte{v1alpha1.SecretKeyAuthorizationURL: []byte(link)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	offer("photos", consentLink, 4*time.Minute)
	create(t, newCloud(ns, "granted", nil, v1alpha1.CloudAuthorizationStatus{Conditions: []metav1.Condition{
		cond("Authorized", "True", "Granted", "refresh token held", 3*time.Hour), cond("Ready", "True", "TokenValid", "", time.Hour)}}))
	create(t, newCloud(ns, "nolink", nil, v1alpha1.CloudAuthorizationStatus{Conditions: pending("ReauthorizationRequired")}))
	offer("stale", consentLink, -time.Minute)
	offer("odd", "file:///etc/passwd", 4*time.Minute)
	offer("gone", "", 4*time.Minute)
	return ns, kubeconfig(t, ns, "")
}

func TestConsent(t *testing.T) {
	ns, kc := consentFixture(t)
	clk := testingclock.NewFakeClock(now)
	header := "Consent link for CloudAuthorization " + ns + "/photos, expires in 4m (2026-12-01T14:04:00Z) (open it in the browser you consent in; it works only there once opened):\n" + consentLink + "\n"

	got := run(t, clk, Env{}, "--kubeconfig", kc, "consent", "photos")
	if got.code != ExitOK || got.out != header || got.err != "" {
		t.Errorf("exit %d\n%s%s\nwant:\n%s", got.code, got.out, got.err, header)
	}
	t.Logf("kubectl thingspace consent photos\n%s", got.out)

	var opened []string
	opener := func(u string) error { opened = append(opened, u); return nil }
	got = run(t, clk, Env{Open: opener}, "--kubeconfig", kc, "consent", "photos", "--open")
	if got.code != ExitOK || got.out != header+"Opened in your browser.\n" || len(opened) != 1 || opened[0] != consentLink {
		t.Errorf("--open: exit %d, opened %q\n%s%s", got.code, opened, got.out, got.err)
	}
	broken := func(string) error { return errors.New("no xdg-open") }
	got = run(t, clk, Env{Open: broken}, "--kubeconfig", kc, "consent", "--open", "photos")
	if got.code != ExitOK || got.out != header+"Could not open a browser (no xdg-open): open the link above yourself.\n" {
		t.Errorf("--open without a browser: exit %d\n%s%s", got.code, got.out, got.err)
	}

	got = run(t, clk, Env{Open: opener}, "--kubeconfig", kc, "consent", "granted", "--open")
	if got.code != ExitOK || got.out != "CloudAuthorization "+ns+"/granted is already authorized (Granted, since 3h ago (2026-12-01T11:00:00Z)): no consent is needed.\n" || len(opened) != 1 {
		t.Errorf("authorized: exit %d, opened %q\n%s%s", got.code, opened, got.out, got.err)
	}

	for _, tc := range []struct{ name, want string }{
		{"nolink", "CloudAuthorization " + ns + "/nolink has no consent link: Authorized=False (ReauthorizationRequired): A person must open"},
		{"stale", "the link of CloudAuthorization " + ns + "/stale has expired; the operator replaces it shortly"},
		{"odd", "the consent Secret odd-consent holds no http(s) link; not printing or opening it"},
		{"gone", `the consent Secret gone-consent is not in namespace "` + ns + `" yet`},
		{"missing", `CloudAuthorization missing not found in namespace "` + ns + `"`},
	} {
		got = run(t, clk, Env{Open: opener}, "--kubeconfig", kc, "consent", tc.name, "--open")
		if got.code != ExitFailure || !strings.Contains(got.err, tc.want) || len(opened) != 1 {
			t.Errorf("%s: exit %d, opened %q\n%s%s", tc.name, got.code, opened, got.out, got.err)
		}
		if strings.Contains(got.out+got.err, "/etc/passwd") {
			t.Errorf("%s: printed a URL that is not http(s)", tc.name)
		}
	}
}

// consent uses the caller's own RBAC: without get on cloudauthorizations the message names the verb and
// the resource; a viewer who may get CloudAuthorizations but not Secrets is told why there is no link.
func TestConsentForbidden(t *testing.T) {
	ns, _ := consentFixture(t)
	got := run(t, testingclock.NewFakeClock(now), Env{}, "--kubeconfig", viewerKubeconfig(t, ns), "-n", ns, "consent", "photos")
	want := `error: forbidden: you may not get cloudauthorizations.thingspace.credops.io in namespace "` + ns + `"`
	if got.code != ExitFailure || !strings.HasPrefix(got.err, want) ||
		!strings.Contains(got.err, `this needs RBAC verb "get" on resource "cloudauthorizations" of API group "thingspace.credops.io"`) ||
		strings.Contains(got.out, "https://") {
		t.Errorf("exit %d\n%s%s", got.code, got.out, got.err)
	}
	t.Logf("forbidden:\n%s", got.err)

	got = run(t, testingclock.NewFakeClock(now), Env{}, "--kubeconfig", viewerKubeconfig(t, ns, "get"), "-n", ns, "consent", "photos")
	want = `error: forbidden: you may not get Secret photos-consent in namespace "` + ns + `", which holds the consent link`
	if got.code != ExitFailure || !strings.HasPrefix(got.err, want) || strings.Contains(got.out+got.err, consentLink) {
		t.Errorf("a viewer: exit %d\n%s%s", got.code, got.out, got.err)
	}
	t.Logf("a viewer:\n%s", got.err)
}
