package credentials_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/credops/thingspace-operator/pkg/credentials"
)

// mountedSecret stands in for a Secret volume such as /var/run/secrets/thingspace (in a pod, the
// kubelet writes it).
func mountedSecret(data map[string]string) string {
	dir, err := os.MkdirTemp("", "thingspace-secret")
	if err != nil {
		log.Fatal(err)
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	return dir
}

// A workload calls ThingSpace's M2M API with the session an M2MSession publishes: the Transport sets
// both headers from the mounted Secret, and follows its rotations.
func ExampleTransport() {
	dir := mountedSecret(map[string]string{
		"access_token":            "app-token",
		"session_token":           "session-token",
		"access_token_expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
	})
	defer func() { _ = os.RemoveAll(dir) }()

	// ThingSpace, for the example: it shows which headers arrived.
	thingspace := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("Authorization:", r.Header.Get("Authorization"))
		fmt.Println("VZ-M2M-Token:", r.Header.Get("VZ-M2M-Token"))
	}))
	defer thingspace.Close()

	src, err := credentials.NewDirSource(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = src.Close() }()
	client := &http.Client{Transport: &credentials.Transport{Source: src}}

	resp, err := client.Get(thingspace.URL + "/api/m2m/v1/accounts/0000123456-00001")
	if err != nil {
		log.Fatal(err)
	}
	_ = resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// Authorization: Bearer app-token
	// VZ-M2M-Token: session-token
	// 200 OK
}

// A credential prints without its tokens, so logging one by mistake leaks nothing.
func ExampleDirSource_Current() {
	dir := mountedSecret(map[string]string{
		"access_token": "app-token",
		"token_type":   "Bearer",
		"expires_at":   "2099-12-01T19:00:00.000Z",
	})
	defer func() { _ = os.RemoveAll(dir) }()
	src, err := credentials.NewDirSource(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = src.Close() }()

	c, err := src.Current(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c)
	fmt.Println("M2M session:", c.IsSession())
	// Output:
	// Credential{token version=03485553a8f28f90 expiresAt=2099-12-01T19:00:00Z}
	// M2M session: false
}

// A workload reads its ThingSpaceApp's Secret through the API server and sees a rotation as soon as the
// operator writes it. In a pod the clientset comes from rest.InClusterConfig, and the pod's
// ServiceAccount needs get and watch on that one Secret (see SecretSource).
func ExampleNewSecretSource() {
	ctx := context.Background()
	expires := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "fleet", Name: "fleet-app-token"},
		Data:       map[string][]byte{"access_token": []byte("token-1"), "token_type": []byte("Bearer"), "expires_at": []byte(expires)},
	}
	clientset := fake.NewClientset(secret) // kubernetes.NewForConfig(cfg) in a pod

	src, err := credentials.NewSecretSource(ctx, clientset, "fleet", "fleet-app-token")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = src.Close() }()
	c, err := src.Current(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Authorization())

	// The operator rotates the token; WaitNewer returns once the watch has delivered it.
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	go func() {
		for len(clientset.Actions()) < 2 { // the fake clientset drops events sent before its watch starts
			time.Sleep(time.Millisecond)
		}
		secret.Data["access_token"] = []byte("token-2")
		_, _ = clientset.CoreV1().Secrets("fleet").Update(ctx, secret, metav1.UpdateOptions{})
	}()
	c, err = src.WaitNewer(waitCtx, c.Version)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Authorization())
	// Output:
	// Bearer token-1
	// Bearer token-2
}
