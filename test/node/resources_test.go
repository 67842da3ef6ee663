//go:build node

package node

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// The tenant's objects: one of each kind, in tenantNS.
const (
	tenantNS      = "fleet"
	appName       = "fleet-app"
	appSecretName = "fleet-app-token"
	sessionName   = "fleet-m2m"
	sessionSecret = "fleet-m2m-session"
	cloudName     = "photos"
	cloudSecret   = "photos-tokens"
	// cloudGrant holds the CloudAuthorization's refresh token (cloudSecret never does).
	cloudGrant     = cloudName + v1alpha1.GrantSecretSuffix
	keepAliveEvery = 5 * time.Minute
)

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// createTenant creates the tenant namespace, the credentials Secrets and one ThingSpaceApp,
// M2MSession and CloudAuthorization against the simulator.
func createTenant(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenantNS}}))
	must(t, harness.CreateCredentials(ctx, k8s, tenantNS, "fleet-app-credentials", appKey, appSecret))
	must(t, harness.CreateUWSCredentials(ctx, k8s, tenantNS, "fleet-uws-credentials", uwsUser, uwsPassword))
	must(t, harness.CreateCredentials(ctx, k8s, tenantNS, "photos-app-credentials", cloudClientID, cloudClientSecret))
	must(t, k8s.Create(ctx, harness.NewApp(tenantNS, appName, sim.url, "fleet-app-credentials", appSecretName)))
	must(t, k8s.Create(ctx, harness.NewM2MSession(tenantNS, sessionName, appName, "fleet-uws-credentials", sessionSecret, keepAliveEvery, "")))
	must(t, k8s.Create(ctx, &v1alpha1.CloudAuthorization{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: cloudName},
		Spec: v1alpha1.CloudAuthorizationSpec{
			Endpoint:             sim.url + "/cloud/1",
			CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: "photos-app-credentials"},
			CallbackURL:          cloudCallback,
			SecretName:           cloudSecret,
		},
	}))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// condition returns obj's condition typ after reading it afresh.
func condition(t *testing.T, obj client.Object, conds func() []metav1.Condition, typ string) *metav1.Condition {
	t.Helper()
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatalf("get %s: %v", obj.GetName(), err)
	}
	return meta.FindStatusCondition(conds(), typ)
}

// waitTrue waits until obj's condition typ is True.
func waitTrue(t *testing.T, obj client.Object, conds func() []metav1.Condition, typ string, timeout time.Duration) {
	t.Helper()
	var last *metav1.Condition
	err := harness.WaitFor(t.Context(), timeout, 250*time.Millisecond, func() (bool, error) {
		last = condition(t, obj, conds, typ)
		return last != nil && last.Status == metav1.ConditionTrue, nil
	})
	if err != nil {
		t.Fatalf("%s %s/%s: %s not True within %s (last %+v)", obj.GetObjectKind().GroupVersionKind().Kind,
			obj.GetNamespace(), obj.GetName(), typ, timeout, last)
	}
}

func tenantApp() *v1alpha1.ThingSpaceApp {
	return &v1alpha1.ThingSpaceApp{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: appName}}
}

func tenantSession() *v1alpha1.M2MSession {
	return &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: sessionName}}
}

func tenantCloud() *v1alpha1.CloudAuthorization {
	return &v1alpha1.CloudAuthorization{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: cloudName}}
}

// waitAllReady waits until the app and the session are Ready and the CloudAuthorization is Authorized
// and Ready.
func waitAllReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	app, sess, cloud := tenantApp(), tenantSession(), tenantCloud()
	waitTrue(t, app, func() []metav1.Condition { return app.Status.Conditions }, v1alpha1.ConditionReady, timeout)
	waitTrue(t, sess, func() []metav1.Condition { return sess.Status.Conditions }, v1alpha1.ConditionReady, timeout)
	waitTrue(t, cloud, func() []metav1.Condition { return cloud.Status.Conditions }, v1alpha1.ConditionAuthorized, timeout)
	waitTrue(t, cloud, func() []metav1.Condition { return cloud.Status.Conditions }, v1alpha1.ConditionReady, timeout)
	recordTokens(t)
}

// recordTokens adds the tokens the Secrets hold now to the values no manager log may contain.
func recordTokens(t *testing.T) {
	t.Helper()
	for name, keys := range map[string][]string{
		appSecretName: {v1alpha1.SecretKeyAccessToken},
		sessionSecret: {v1alpha1.SecretKeySessionToken},
		cloudSecret:   {v1alpha1.SecretKeyAccessToken},
		cloudGrant:    {v1alpha1.SecretKeyAccessToken, v1alpha1.SecretKeyRefreshToken},
	} {
		data, _ := secretData(t, name)
		for _, k := range keys {
			sensitive.Add(k+" of "+name, string(data[k]))
		}
	}
}

// giveConsent waits for the CloudAuthorization's consent link (in its consent Secret) and consents
// through a manager pod's start and callback endpoints, retrying on pods that are not (yet) serving them.
func giveConsent(t *testing.T, podIPs func() []string, callbackPort int) {
	t.Helper()
	cloud := tenantCloud()
	err := harness.WaitFor(t.Context(), 2*time.Minute, 500*time.Millisecond, func() (bool, error) {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(cloud), cloud); err != nil {
			return false, err
		}
		link, err := harness.ConsentLink(t.Context(), k8s, client.ObjectKeyFromObject(cloud))
		if err != nil || link == "" {
			return false, err
		}
		for _, ip := range podIPs() {
			status, err := sim.consent(t.Context(), link, hostPort(ip, callbackPort))
			if err == nil && status < 300 {
				return true, nil
			}
			t.Logf("consent through %s: status %d, %v", ip, status, err)
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no consent given: %v", err)
	}
}

// secretData reads a Secret's data (nil when it does not exist) and its resourceVersion.
func secretData(t *testing.T, name string) (map[string][]byte, string) {
	t.Helper()
	s := &corev1.Secret{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: tenantNS, Name: name}, s); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return nil, ""
		}
		t.Fatalf("get Secret %s: %v", name, err)
	}
	return s.Data, s.ResourceVersion
}
