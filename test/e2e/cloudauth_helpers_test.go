package e2e

import (
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// cloudTokens is what the CloudAuthorization's grant Secret (`<name>-grant`, the operator's record of
// both tokens) holds; keys are those of the workload's Secret.
type cloudTokens struct {
	access, refresh, tokenType, expiresRaw string
	expiresAt                              time.Time
	annotations                            map[string]string
	keys                                   []string
}

// readSecret reads the grant Secret and the workload's Secret the CloudAuthorization writes and
// records their tokens as sensitive; ok is false when the grant Secret does not exist. The workload's
// Secret (returned; nil when absent) must never hold a refresh token, and holds the grant's access
// token once published.
func (e *cloudEnv) readSecret() (cloudTokens, *corev1.Secret, bool) {
	e.t.Helper()
	get := func(name string) *corev1.Secret {
		s := &corev1.Secret{}
		if err := k8s.Get(e.t.Context(), types.NamespacedName{Namespace: e.ns, Name: name}, s); err != nil {
			if client.IgnoreNotFound(err) == nil {
				return nil
			}
			e.t.Fatalf("get Secret %s: %v", name, err)
		}
		e.add("a Cloud access token", string(s.Data[v1alpha1.SecretKeyAccessToken]))
		e.add("a Cloud refresh token", string(s.Data[v1alpha1.SecretKeyRefreshToken]))
		return s
	}
	w, g := get(cloudSecretName), get(cloudGrantName)
	if w != nil {
		if _, has := w.Data[v1alpha1.SecretKeyRefreshToken]; has {
			e.t.Errorf("the workload's Secret %s holds a refresh token", cloudSecretName)
		}
	}
	if g == nil {
		return cloudTokens{}, w, false
	}
	ct := cloudTokens{
		access:      string(g.Data[v1alpha1.SecretKeyAccessToken]),
		refresh:     string(g.Data[v1alpha1.SecretKeyRefreshToken]),
		tokenType:   string(g.Data[v1alpha1.SecretKeyTokenType]),
		expiresRaw:  string(g.Data[v1alpha1.SecretKeyExpiresAt]),
		annotations: g.Annotations,
	}
	if w != nil {
		for k := range w.Data {
			ct.keys = append(ct.keys, k)
		}
	}
	ct.expiresAt, _ = time.Parse(time.RFC3339, ct.expiresRaw)
	return ct, w, true
}

// tokens reads the Secrets, which must hold an access token and a refresh token.
func (e *cloudEnv) tokens() cloudTokens {
	e.t.Helper()
	ct, _, ok := e.readSecret()
	if !ok || ct.access == "" || ct.refresh == "" {
		e.t.Fatalf("Secret %s: exists=%v, access token present=%v, refresh token present=%v", cloudGrantName, ok, ct.access != "", ct.refresh != "")
	}
	return ct
}

func (e *cloudEnv) stats() harness.CloudStats {
	e.t.Helper()
	st, err := e.sim.CloudStats()
	if err != nil {
		e.t.Fatalf("simulator cloud stats: %v", err)
	}
	return st
}

// tokenRequests is how many requests reached the simulator's token endpoint (any status; 0 = all).
func (e *cloudEnv) tokenRequests(status int) int {
	e.t.Helper()
	return calls(e.t, e.sim, harness.RouteCloudToken, status)
}

// accountOK reports whether the simulator accepts token on GET /cloud/1/account.
func (e *cloudEnv) accountOK(token string) bool {
	e.t.Helper()
	ok, err := e.sim.CloudAccountOK(e.t.Context(), token)
	if err != nil {
		e.t.Fatalf("GET /cloud/1/account: %v", err)
	}
	return ok
}

// requestRefresh sets the refresh-requested annotation to value.
func (e *cloudEnv) requestRefresh(value string) {
	e.t.Helper()
	ca := e.get()
	patch := client.MergeFrom(ca.DeepCopy())
	if ca.Annotations == nil {
		ca.Annotations = map[string]string{}
	}
	ca.Annotations[v1alpha1.RefreshRequestedAnnotation] = value
	if err := k8s.Patch(e.t.Context(), ca, patch); err != nil {
		e.t.Fatalf("annotate %s: %v", cloudName, err)
	}
}

// consent opens the current authorization URL, checks the page, and waits until the CloudAuthorization
// is Authorized and Ready with tokens in the Secret. It returns what the browser saw.
func (e *cloudEnv) consent() browsed {
	e.t.Helper()
	b := e.browse(e.waitURL())
	if b.callback == nil || b.callback.Query().Get("code") == "" {
		e.t.Fatalf("consent: the simulator did not redirect to the callback with a code (page status %d)", b.status)
	}
	if b.status != http.StatusOK {
		e.t.Fatalf("consent: the callback answered %d, want 200: %.300s; %s", b.status, b.body, describeCloud(e.get()))
	}
	e.waitReady()
	e.tokens()
	return b
}

// checkNoTokenIn fails when the page holds the code it was reached with or a token of the Secret.
func (e *cloudEnv) checkNoTokenIn(what string, b browsed, ct cloudTokens) {
	e.t.Helper()
	if b.callback != nil {
		if code := b.callback.Query().Get("code"); code != "" && strings.Contains(b.body, code) {
			e.t.Errorf("%s: the page holds the authorization code", what)
		}
	}
	for name, v := range map[string]string{"access token": ct.access, "refresh token": ct.refresh, "client secret": e.secret} {
		if v != "" && strings.Contains(b.body, v) {
			e.t.Errorf("%s: the page holds the %s", what, name)
		}
	}
}

// events returns the Events about the CloudAuthorization with reason.
func (e *cloudEnv) events(reason string) []eventsv1.Event {
	e.t.Helper()
	list := &eventsv1.EventList{}
	if err := k8s.List(e.t.Context(), list, client.InNamespace(e.ns)); err != nil {
		e.t.Fatalf("list events: %v", err)
	}
	var out []eventsv1.Event
	for _, ev := range list.Items {
		if ev.Regarding.Kind == "CloudAuthorization" && ev.Regarding.Name == cloudName && ev.Reason == reason {
			out = append(out, ev)
		}
	}
	return out
}

// waitRefreshes waits until the simulator has processed want successful refreshes in total.
func (e *cloudEnv) waitRefreshes(want int, timeout time.Duration) {
	e.t.Helper()
	err := harness.WaitFor(e.t.Context(), timeout, 20*time.Millisecond, func() (bool, error) {
		st, err := e.sim.CloudStats()
		return err == nil && st.Refreshes >= want, err
	})
	if err != nil {
		e.t.Fatalf("waiting for %d refreshes at the simulator: %v; stats %+v; %s", want, err, e.stats(), describeCloud(e.get()))
	}
}

// checkNoReuse fails when a refresh token or code was presented twice, or any grant was refused.
func (e *cloudEnv) checkNoReuse(when string) harness.CloudStats {
	e.t.Helper()
	st := e.stats()
	if st.RefreshTokenReuses != 0 || st.CodeReuses != 0 || st.InvalidGrants != 0 {
		e.t.Errorf("%s: %d refresh-token reuses, %d code reuses, %d invalid_grant answers, want none: %+v",
			when, st.RefreshTokenReuses, st.CodeReuses, st.InvalidGrants, st)
	}
	return st
}
