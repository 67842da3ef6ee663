package capture

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/argocd"
	"github.com/credops/thingspace-operator/test/harness"
)

// scenario is one state a user meets, driven through the real controllers.
type scenario struct {
	kind, file string
	// drive brings an object into the state and returns it as the API server holds it.
	drive func(t *testing.T, e *env) client.Object
	// want is the health Argo CD must show for that object.
	want func(obj map[string]any) argocd.Health
	// prefix, when set, is what the message must start with instead of equalling want's.
	prefix bool
}

func status(obj map[string]any, field string) string {
	st, _ := obj["status"].(map[string]any)
	s, _ := st[field].(string)
	return s
}

var scenarios = []scenario{
	{kind: "ThingSpaceApp", file: "captured-token-valid", drive: func(t *testing.T, e *env) client.Object {
		return e.waitCond(t, e.app(t, "fleet-app", e.appSecret), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid)
	}, want: func(obj map[string]any) argocd.Health {
		return argocd.Health{Status: "Healthy", Message: "Token valid until " + status(obj, "expiresAt")}
	}},
	{kind: "ThingSpaceApp", file: "captured-credentials-rejected", drive: func(t *testing.T, e *env) client.Object {
		return e.waitCond(t, e.app(t, "rejected-app", "Wr0ng-secret"), v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonCredentialsRejected)
	}, want: fixed("Degraded", "CredentialsRejected: "), prefix: true},
	{kind: "M2MSession", file: "captured-session-valid", drive: func(t *testing.T, e *env) client.Object {
		return e.waitCond(t, e.session(t, "fleet-uws", uwsPassword), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	}, want: func(obj map[string]any) argocd.Health {
		return argocd.Health{Status: "Healthy", Message: "Session live since " + status(obj, "lastLoginTime")}
	}},
	{kind: "M2MSession", file: "captured-login-rejected", drive: func(t *testing.T, e *env) client.Object {
		return e.waitCond(t, e.session(t, "refused-uws", "Wr0ng!Passw0rd"), v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonLoginRejected)
	}, want: fixed("Degraded", "LoginRejected: "), prefix: true},
	{kind: "ClusterM2MSession", file: "captured-session-valid", drive: func(t *testing.T, e *env) client.Object {
		cm := e.clusterSession(t, "platform-uws", "fleet-consumer", &v1alpha1.AllowedNamespaces{Names: []string{"fleet"}})
		e.waitCond(t, &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "fleet-consumer"}},
			v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
		return e.waitCond(t, cm, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	}, want: func(obj map[string]any) argocd.Health {
		return argocd.Health{Status: "Healthy", Message: "Session live since " + status(obj, "lastLoginTime") + "; 1 consumer(s)"}
	}},
	{kind: "M2MSession", file: "captured-consumer-not-allowed", drive: func(t *testing.T, e *env) client.Object {
		e.clusterSession(t, "closed-uws", "outsider", nil)
		return e.waitCond(t, &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "outsider"}},
			v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNotAllowed)
	}, want: fixed("Degraded", "NotAllowed: "), prefix: true},
	{kind: "ClusterThingSpaceApp", file: "captured-token-valid", drive: func(t *testing.T, e *env) client.Object {
		return e.servingOne(t, e.clusterApp(t, "shared-app", "shared-consumer", &v1alpha1.AllowedNamespaces{Names: []string{"fleet"}}), "shared-consumer")
	}, want: func(obj map[string]any) argocd.Health {
		return argocd.Health{Status: "Healthy", Message: "Token valid until " + status(obj, "expiresAt") + "; 1 consumer(s)"}
	}},
	{kind: "ThingSpaceApp", file: "captured-consumer-not-allowed", drive: func(t *testing.T, e *env) client.Object {
		e.clusterApp(t, "closed-app", "outsider-app", nil) // allows no namespace
		outsider := &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "outsider-app"}}
		return e.waitCond(t, outsider, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNotAllowed)
	}, want: fixed("Degraded", "NotAllowed: "), prefix: true},
	{kind: "CloudAuthorization", file: "captured-waiting-for-consent", drive: func(t *testing.T, e *env) client.Object {
		ca := e.waitCond(t, e.cloud(t, "photos-pending"), v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending)
		return e.waitURL(t, ca)
	}, want: fixed("Suspended", "Waiting for consent: the link is in Secret photos-pending-consent (kubectl thingspace consent)")},
	{kind: "CloudAuthorization", file: "captured-authorized", drive: func(t *testing.T, e *env) client.Object {
		return e.authorized(t, "photos")
	}, want: func(obj map[string]any) argocd.Health {
		return argocd.Health{Status: "Healthy", Message: "Token valid until " + status(obj, "expiresAt")}
	}},
	{kind: "CloudAuthorization", file: "captured-reauthorization-required", drive: func(t *testing.T, e *env) client.Object {
		ca := e.authorized(t, "photos-revoked")
		if n := e.sim.RevokeCloudGrants(e.appKey); n == 0 {
			t.Fatal("the simulator revoked no grant")
		}
		// A refresh request makes the operator use the revoked refresh token now.
		patch := client.MergeFrom(ca.DeepCopyObject().(client.Object))
		ca.SetAnnotations(map[string]string{v1alpha1.RefreshRequestedAnnotation: time.Now().UTC().Format(time.RFC3339Nano)})
		must(t, e.cp.Client.Patch(context.Background(), ca, patch))
		return e.waitCond(t, ca, v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonReauthorizationRequired)
	}, want: fixed("Degraded", "ReauthorizationRequired: "), prefix: true},
	{kind: "CloudAuthorization", file: "captured-access-denied", drive: func(t *testing.T, e *env) client.Object {
		ca := e.waitURL(t, e.waitCond(t, e.cloud(t, "photos-denied"), v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending))
		e.sim.SetCloudDenyConsent(true)
		defer e.sim.SetCloudDenyConsent(false)
		if code := e.consent(t, ca); code != http.StatusOK {
			t.Fatalf("the callback answered %d to a refused consent", code)
		}
		return e.waitCond(t, ca, v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAccessDenied)
	}, want: fixed("Degraded", "AccessDenied: "), prefix: true},
}

func fixed(s, msg string) func(map[string]any) argocd.Health {
	return func(map[string]any) argocd.Health { return argocd.Health{Status: s, Message: msg} }
}

// check compares a script's answer with the scenario's.
func (sc scenario) check(t *testing.T, obj map[string]any, got argocd.Health) {
	t.Helper()
	want := sc.want(obj)
	ok := got.Status == want.Status && got.Message == want.Message
	if sc.prefix {
		ok = got.Status == want.Status && strings.HasPrefix(got.Message, want.Message) && len(got.Message) > len(want.Message)
	}
	if !ok {
		t.Errorf("%s: got %+v, want %+v (prefix %v)", sc.file, got, want, sc.prefix)
	}
	if strings.Contains(got.Message, "state=") || strings.Contains(got.Message, "://") {
		t.Errorf("%s: the message carries a URL: %q", sc.file, got.Message)
	}
}

// authorized creates a CloudAuthorization and consents to it as a person would, through the browser
// redirects and the manager's callback.
func (e *env) authorized(t *testing.T, name string) *v1alpha1.CloudAuthorization {
	ca := e.waitURL(t, e.waitCond(t, e.cloud(t, name), v1alpha1.ConditionAuthorized, metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending))
	if code := e.consent(t, ca); code != http.StatusOK {
		t.Fatalf("the callback answered %d", code)
	}
	return e.waitCond(t, ca, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenValid).(*v1alpha1.CloudAuthorization)
}

// waitCond waits until obj's condition typ has status and reason, and returns obj as then read.
func (e *env) waitCond(t *testing.T, obj client.Object, typ string, s metav1.ConditionStatus, reason string) client.Object {
	t.Helper()
	var last *metav1.Condition
	err := harness.WaitFor(context.Background(), 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		if err := e.cp.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err
		}
		last = meta.FindStatusCondition(conditions(obj), typ)
		return last != nil && last.Status == s && last.Reason == reason, nil
	})
	if err != nil {
		t.Fatalf("%s: %s never became %s/%s (last %+v): %v", obj.GetName(), typ, s, reason, last, err)
	}
	return obj
}

func conditions(obj client.Object) []metav1.Condition {
	switch o := obj.(type) {
	case *v1alpha1.ThingSpaceApp:
		return o.Status.Conditions
	case *v1alpha1.M2MSession:
		return o.Status.Conditions
	case *v1alpha1.CloudAuthorization:
		return o.Status.Conditions
	case *v1alpha1.ClusterM2MSession:
		return o.Status.Conditions
	case *v1alpha1.ClusterThingSpaceApp:
		return o.Status.Conditions
	}
	return nil
}

// waitURL waits until the CloudAuthorization offers a consent link (in its consent Secret).
func (e *env) waitURL(t *testing.T, obj client.Object) *v1alpha1.CloudAuthorization {
	t.Helper()
	ca := obj.(*v1alpha1.CloudAuthorization)
	err := harness.WaitFor(context.Background(), 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		link, err := harness.ConsentLink(context.Background(), e.cp.Client, client.ObjectKeyFromObject(ca))
		if err == nil {
			err = e.cp.Client.Get(context.Background(), client.ObjectKeyFromObject(ca), ca)
		}
		return err == nil && link != "", err
	})
	if err != nil {
		t.Fatalf("%s: no consent link: %v", ca.Name, err)
	}
	return ca
}

// consent plays the browser: the consent link's start endpoint sets its cookie and redirects to the
// simulator's authorize page, which redirects to the manager's callback.
func (e *env) consent(t *testing.T, ca *v1alpha1.CloudAuthorization) int {
	t.Helper()
	link, err := harness.ConsentLink(context.Background(), e.cp.Client, client.ObjectKeyFromObject(ca))
	must(t, err)
	c, err := harness.NewBrowser().Consent(context.Background(), link)
	if err != nil {
		t.Fatalf("consent: %v", err) // never quotes a URL: the callback's holds a code
	}
	return c.Page.Status
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// secretKeys are the data keys that hold a secret, in credentials Secrets and in those the operator
// writes.
var secretKeys = []string{v1alpha1.SecretKeyAccessToken, v1alpha1.SecretKeyRefreshToken, v1alpha1.SecretKeySessionToken,
	v1alpha1.CredentialsKeySecret, v1alpha1.CredentialsKeyPassword}

// secretValues lists every secret value in the namespace's Secrets: credentials and every token the
// operator wrote, which no captured file may contain.
func (e *env) secretValues(t *testing.T) []string {
	t.Helper()
	list := &corev1.SecretList{}
	must(t, e.cp.Client.List(context.Background(), list, client.InNamespace(e.ns)))
	var out []string
	for _, s := range list.Items {
		for _, k := range secretKeys {
			if v := s.Data[k]; len(v) > 0 {
				out = append(out, string(v))
			}
		}
	}
	return out
}
