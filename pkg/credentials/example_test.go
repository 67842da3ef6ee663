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
