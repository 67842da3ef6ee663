package upstream

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func certPEM(t *testing.T, srv *httptest.Server) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// otherCAPEM returns a fresh self-signed CA certificate.
func otherCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "other test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
		DNSNames:              []string{"127.0.0.1", "localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func newTLSServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // expected handshake failures are noise
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestNewHTTPClientCABundle(t *testing.T) {
	srv := newTLSServer(t)
	other := otherCAPEM(t) // httptest servers all share one certificate; this is a different CA

	tests := []struct {
		name    string
		bundle  []byte
		wantErr bool
	}{
		{name: "server cert as bundle", bundle: certPEM(t, srv)},
		{name: "bundle with text around the cert", bundle: append([]byte("# comment\n"), certPEM(t, srv)...)},
		{name: "system roots do not trust the test CA", bundle: nil, wantErr: true},
		{name: "another CA does not trust it", bundle: other, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hc, err := NewHTTPClient(tt.bundle, 5*time.Second)
			if err != nil {
				t.Fatalf("NewHTTPClient: %v", err)
			}
			resp, err := hc.Get(srv.URL)
			if resp != nil {
				DrainAndClose(resp.Body)
			}
			if tt.wantErr {
				if err == nil {
					t.Fatal("request succeeded, want a certificate error")
				}
				got := TransportError("test", "get", err).Error()
				if !strings.Contains(got, "tls: certificate verification failed") {
					t.Errorf("message %q does not name the TLS failure", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("request failed: %v", err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
		})
	}
}

func TestNewHTTPClientTrustsOnlyTheBundle(t *testing.T) {
	srv := newTLSServer(t)
	bundle := certPEM(t, srv)
	want := x509.NewCertPool()
	want.AppendCertsFromPEM(bundle)

	hc, err := NewHTTPClient(bundle, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	roots := hc.Transport.(*http.Transport).TLSClientConfig.RootCAs
	if roots == nil || !roots.Equal(want) {
		t.Error("RootCAs is not exactly the bundle")
	}

	hc, err = NewHTTPClient(nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if roots := hc.Transport.(*http.Transport).TLSClientConfig.RootCAs; roots != nil {
		t.Error("without a bundle RootCAs must be nil (system roots)")
	}
}

func TestNewHTTPClientRejectsBundleWithoutCerts(t *testing.T) {
	for name, bundle := range map[string][]byte{
		"text":            []byte("not a pem"),
		"broken cert":     []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
		"only a key type": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
	} {
		t.Run(name, func(t *testing.T) {
			hc, err := NewHTTPClient(bundle, time.Second)
			if !errors.Is(err, ErrNoCertificates) || hc != nil {
				t.Fatalf("got (%v, %v), want ErrNoCertificates", hc, err)
			}
		})
	}
}

func TestNewHTTPClientSettings(t *testing.T) {
	tests := []struct {
		timeout, want time.Duration
	}{
		{timeout: 5 * time.Second, want: 5 * time.Second},
		{timeout: 0, want: DefaultTimeout},
		{timeout: -time.Second, want: DefaultTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.timeout.String(), func(t *testing.T) {
			hc, err := NewHTTPClient(nil, tt.timeout)
			if err != nil {
				t.Fatal(err)
			}
			if hc.Timeout != tt.want {
				t.Errorf("Timeout = %v, want %v", hc.Timeout, tt.want)
			}
			tr := hc.Transport.(*http.Transport)
			if tr.DialContext == nil || tr.TLSHandshakeTimeout <= 0 {
				t.Error("dial or TLS handshake not bounded")
			}
			if tr.ResponseHeaderTimeout <= 0 || tr.ResponseHeaderTimeout > tt.want {
				t.Errorf("ResponseHeaderTimeout = %v, want in (0, %v]", tr.ResponseHeaderTimeout, tt.want)
			}
			if tr.MaxIdleConnsPerHost < 32 || tr.MaxIdleConns < tr.MaxIdleConnsPerHost {
				t.Errorf("idle pool too small: %d per host, %d total", tr.MaxIdleConnsPerHost, tr.MaxIdleConns)
			}
			if tr.TLSClientConfig.MinVersion < 0x0303 {
				t.Error("TLS below 1.2 allowed")
			}
		})
	}
}

func TestNewHTTPClientDoesNotFollowRedirects(t *testing.T) {
	var followed bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed = true
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	hc, err := NewHTTPClient(nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Post(srv.URL, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	DrainAndClose(resp.Body)
	if resp.StatusCode != http.StatusFound || followed {
		t.Fatalf("status %d, followed %v: redirect was followed", resp.StatusCode, followed)
	}
}

func TestHTTPClientsCache(t *testing.T) {
	srv := newTLSServer(t)
	bundle := certPEM(t, srv)
	c := NewHTTPClients(3 * time.Second)

	a, err := c.Get(bundle)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Get(bytes.Clone(bundle))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("same bundle gave two clients")
	}
	if a.Timeout != 3*time.Second {
		t.Errorf("Timeout = %v", a.Timeout)
	}
	sys, err := c.Get(nil)
	if err != nil {
		t.Fatal(err)
	}
	sys2, _ := c.Get([]byte{})
	if sys == a || sys != sys2 {
		t.Error("nil and empty bundle must share the system-roots client, distinct from the bundle's")
	}
	if _, err := c.Get([]byte("junk")); !errors.Is(err, ErrNoCertificates) {
		t.Errorf("junk bundle: %v", err)
	}
	if c.Len() != 1 {
		t.Errorf("cache holds %d bundle clients, want 1 (a failed bundle is not cached)", c.Len())
	}

	// Distinct bytes, same certificate: the cache stays bounded.
	for i := range 3 * maxCachedClients {
		if _, err := c.Get(append([]byte(fmt.Sprintf("# %d\n", i)), bundle...)); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() > maxCachedClients {
		t.Errorf("cache grew to %d, bound is %d", c.Len(), maxCachedClients)
	}

	var zero HTTPClients
	hc, err := zero.Get(nil)
	if err != nil || hc.Timeout != DefaultTimeout {
		t.Errorf("zero value: %v, %v", hc, err)
	}
}

// Issue 8 scenario 18: more than maxCachedClients distinct CA bundles evicted an arbitrary entry,
// the default (system roots) client among them, closing the idle connections every object without a
// bundle shares. The default client is never evicted.
func TestHTTPClientsNeverEvictDefault(t *testing.T) {
	srv := newTLSServer(t)
	bundle := certPEM(t, srv)
	c := NewHTTPClients(time.Second)
	sys, err := c.Get(nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 * maxCachedClients {
		if _, err := c.Get(append([]byte(fmt.Sprintf("# %d\n", i)), bundle...)); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := c.Get(nil); got != sys {
		t.Fatalf("after %d distinct CA bundles the default client was evicted and rebuilt", 4*maxCachedClients)
	}
}

// Issue 8 scenario 18: the bundle clients beyond the bound go least recently used first, so a bundle in
// steady use keeps its connection pool while one-off bundles churn.
func TestHTTPClientsEvictLeastRecentlyUsed(t *testing.T) {
	srv := newTLSServer(t)
	bundle := certPEM(t, srv)
	c := NewHTTPClients(time.Second)
	hot, err := c.Get(bundle)
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.Get(append([]byte("# first\n"), bundle...))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 * maxCachedClients {
		if _, err := c.Get(append([]byte(fmt.Sprintf("# %d\n", i)), bundle...)); err != nil {
			t.Fatal(err)
		}
		if got, _ := c.Get(bundle); got != hot { // used again each round: most recent, never evicted
			t.Fatalf("after %d other bundles the recently used bundle's client was evicted", i+1)
		}
	}
	if got, _ := c.Get(append([]byte("# first\n"), bundle...)); got == first {
		t.Error("the least recently used bundle's client outlived the bound")
	}
	if n := c.Len(); n > maxCachedClients {
		t.Errorf("cache holds %d bundle clients, bound is %d", n, maxCachedClients)
	}
}
