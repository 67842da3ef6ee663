package thingspace

import (
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/upstream"
)

func TestCABundle(t *testing.T) {
	srv := httptest.NewUnstartedServer(respond(200, `{"access_token":"`+testToken+`","expires_in":3600}`))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	bundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	withBundle, err := upstream.NewHTTPClient(bundle, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	systemRoots, err := upstream.NewHTTPClient(nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cached, err := upstream.NewHTTPClients(5 * time.Second).Get(bundle)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		hc      *http.Client
		wantErr bool
	}{
		{name: "server certificate as bundle", hc: withBundle},
		{name: "cached client for the bundle", hc: cached},
		{name: "system roots reject the test CA", hc: systemRoots, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			c, err := New(srv.URL, tt.hc, WithObserver(rec.Observe))
			if err != nil {
				t.Fatal(err)
			}
			tok, err := c.Token(t.Context(), testCreds, "")
			if !tt.wantErr {
				if err != nil || tok.AccessToken != testToken {
					t.Fatalf("Token: %v", err)
				}
				rec.Expect(t, "token 200")
				return
			}
			if !upstream.IsTransient(err) || !strings.Contains(err.Error(), "certificate verification failed") {
				t.Fatalf("err = %v, want a transient certificate error", err)
			}
			rec.Expect(t, "token error")
		})
	}
}
