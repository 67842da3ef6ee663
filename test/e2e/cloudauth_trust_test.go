package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/consent"
	"github.com/credops/thingspace-operator/test/harness"
)

// --- 9. Consent only by people allowed to give it (issue 9 §3) ---

// TestCloudViewerCannotObtainAConsentLink: someone with the `view` role (the built-in ClusterRole plus
// config/rbac's cloudauthorization-viewer-role, which aggregates into it) sees that consent is pending
// and which Secret holds the link, but cannot read that Secret, and nothing they can read (the status)
// yields a link or a state that works.
func TestCloudViewerCannotObtainAConsentLink(t *testing.T) {
	t.Parallel()
	e := newCloudEnv(t, cloudOpts{})
	link := e.waitURL()
	viewer := viewerClient(t, e.ns)

	ca := &v1alpha1.CloudAuthorization{}
	if err := viewer.Get(t.Context(), types.NamespacedName{Namespace: e.ns, Name: cloudName}, ca); err != nil {
		t.Fatalf("the viewer cannot even get the CloudAuthorization (the test's RBAC is wrong): %v", err)
	}
	if ca.Status.ConsentSecretName != cloudConsentName || !hasCondition(ca, v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending) {
		t.Errorf("the viewer does not see that consent is pending in %s: %s", cloudConsentName, describeCloud(ca))
	}
	if _, err := harness.ConsentLink(t.Context(), viewer, client.ObjectKeyFromObject(ca)); !apierrors.IsForbidden(err) {
		t.Errorf("the viewer reading the consent link: %v, want Forbidden", err)
	}
	if err := viewer.List(t.Context(), &corev1.SecretList{}, client.InNamespace(e.ns)); !apierrors.IsForbidden(err) {
		t.Errorf("the viewer listing Secrets: %v, want Forbidden", err)
	}
	tok := consent.TokenOf(link)
	raw, _ := json.Marshal(ca)
	for what, v := range map[string]string{"the link": link, "its start token": tok, "its state": consent.State(tok)} {
		if strings.Contains(string(raw), v) {
			t.Errorf("the CloudAuthorization a viewer reads holds %s", what)
		}
	}
	// What the viewer can read does not start a consent.
	b := harness.NewBrowser()
	start := strings.TrimSuffix(mgr.CallbackURL, "callback") + "start?state="
	for _, v := range []string{ca.Status.ConsentStateHash, "", "x"} {
		p, err := b.Get(t.Context(), start+url.QueryEscape(v))
		if err != nil || p.Status != http.StatusBadRequest || p.Location != nil {
			t.Errorf("the start endpoint with what a viewer sees: status %d, redirect %v, %v", p.Status, p.Location != nil, err)
		}
	}
	if st := e.stats(); st.CodesIssued != 0 {
		t.Errorf("%d codes issued: a viewer reached Verizon's consent page", st.CodesIssued)
	}
}

// TestCloudConsentOnlyWithItsCookie: the callback URL (code and state) replayed from another browser,
// and Verizon's authorize URL (it carries the state) completed in another browser with another
// person's consent, both get a 400 and no code exchange, and spend nothing: the browser that opened
// the link then completes the consent. The refusals are counted by reason.
func TestCloudConsentOnlyWithItsCookie(t *testing.T) {
	t.Parallel()
	e := newCloudEnv(t, cloudOpts{})
	link := e.waitURL()
	person, other := e.browser, harness.NewBrowser()
	missingBefore := rejected(t, "callback", "cookie_missing")

	start, err := person.Get(t.Context(), link)
	if err != nil || start.Status != http.StatusSeeOther || start.Location == nil {
		t.Fatalf("start: status %d, %v", start.Status, err)
	}
	startURL, _ := url.Parse(link)
	var cookie *http.Cookie
	for _, c := range person.Jar.Cookies(startURL) {
		if strings.HasPrefix(c.Name, "thingspace-consent-") {
			cookie = c
		}
	}
	if cookie == nil || cookie.Value != consent.TokenOf(link) {
		t.Fatalf("the start endpoint set no binding cookie in the person's browser (the http callback's plain one)")
	}
	authorize, err := person.Get(t.Context(), start.Location.String())
	if err != nil || authorize.Location == nil {
		t.Fatalf("authorize: status %d, %v", authorize.Status, err)
	}
	back := authorize.Location
	e.add("a Cloud authorization code", back.Query().Get("code"))

	// The callback URL, replayed from another browser.
	if p, err := other.Get(t.Context(), back.String()); err != nil || p.Status != http.StatusBadRequest {
		t.Errorf("the callback from another browser: status %d, %v; want 400", p.Status, err)
	}
	// Verizon's authorize URL, completed in another browser (its own consent, its own code).
	leaked, err := other.Get(t.Context(), start.Location.String())
	if err != nil || leaked.Location == nil {
		t.Fatalf("authorize in the other browser: status %d, %v", leaked.Status, err)
	}
	e.add("a Cloud authorization code", leaked.Location.Query().Get("code"))
	if p, err := other.Get(t.Context(), leaked.Location.String()); err != nil || p.Status != http.StatusBadRequest {
		t.Errorf("another browser's consent on the leaked state: status %d, %v; want 400", p.Status, err)
	}
	time.Sleep(300 * time.Millisecond)
	if st := e.stats(); st.CodeExchanges != 0 || st.CodesIssued != 2 {
		t.Errorf("cloud stats %+v: want 2 codes issued, none exchanged", st)
	}
	if ca := e.get(); ca.Status.ConsentStateHash != consent.Hash(consent.State(consent.TokenOf(link))) {
		t.Errorf("the refused callbacks spent the consent: %s", describeCloud(ca))
	}
	if n := rejected(t, "callback", "cookie_missing") - missingBefore; n < 2 {
		t.Errorf("thingspace_oauth_callback_rejected_total{reason=cookie_missing} rose by %v, want at least 2", n)
	}

	// The person's own browser completes, with the first code.
	p, err := person.Get(t.Context(), back.String())
	if err != nil || p.Status != http.StatusOK {
		t.Fatalf("the callback in the person's browser: status %d, %v: %.300s", p.Status, err, p.Body)
	}
	e.waitReady()
	if st := e.stats(); st.CodeExchanges != 1 {
		t.Errorf("%d code exchanges, want 1", st.CodeExchanges)
	}
	if !e.accountOK(e.tokens().access) {
		t.Errorf("the access token is refused")
	}
	e.checkNoReuse("after the consent")
}

// viewerClient is a client impersonating a user who has, in ns, what the aggregated `view` role gives:
// the built-in view ClusterRole and config/rbac's cloudauthorization-viewer-role (the ClusterRole
// aggregation controller does not run on the test control plane, so both are bound).
func viewerClient(t *testing.T, ns string) client.Client {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "config", "rbac", "cloudauthorization_viewer_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(b, role); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(t.Context(), role); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create %s: %v", role.Name, err)
	}
	user := "viewer-" + ns
	for _, r := range []string{"view", role.Name} {
		if err := k8s.Create(t.Context(), &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user + "-" + r},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		}); err != nil {
			t.Fatalf("bind %s: %v", r, err)
		}
	}
	cfg := rest.CopyConfig(cp.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: cp.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	// The bindings take effect at once, but wait until the viewer sees the object to be sure.
	if err := harness.WaitFor(t.Context(), 10*time.Second, 100*time.Millisecond, func() (bool, error) {
		return c.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: cloudName}, &v1alpha1.CloudAuthorization{}) == nil, nil
	}); err != nil {
		t.Fatalf("the viewer never could get the CloudAuthorization: %v", err)
	}
	return c
}

// rejected is the manager's thingspace_oauth_callback_rejected_total for endpoint and reason.
func rejected(t *testing.T, endpoint, reason string) float64 {
	t.Helper()
	text, err := mgr.Metrics()
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	series := `thingspace_oauth_callback_rejected_total{endpoint="` + endpoint + `",reason="` + reason + `"} `
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("the manager does not serve %s", strings.TrimSpace(series))
	return 0
}
