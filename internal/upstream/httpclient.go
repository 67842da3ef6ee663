package upstream

import (
	"container/list"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultTimeout bounds a whole exchange (connect, request, response headers and body) when
// NewHTTPClient is given no timeout: an upstream call must never hang a reconcile worker.
const DefaultTimeout = 30 * time.Second

// Transport limits. A thousand objects against one host share these connections; concurrency
// is bounded by the controllers' worker count, so the pool only has to keep enough idle
// connections for the workers to reuse instead of re-dialling and re-handshaking.
const (
	dialTimeout           = 10 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 30 * time.Second
	idleConnTimeout       = 90 * time.Second
	maxIdleConns          = 256
	maxIdleConnsPerHost   = 64
)

// ErrNoCertificates is returned when a CA bundle is given but holds no PEM certificate.
var ErrNoCertificates = errors.New("upstream: CA bundle contains no PEM certificate")

// NewHTTPClient returns a client for upstream APIs. With an empty caBundlePEM it trusts the
// system roots; otherwise it trusts ONLY the certificates in caBundlePEM (a private CA or a
// simulator must not silently widen trust to the system roots). timeout bounds every exchange;
// zero or negative means DefaultTimeout, never "no timeout".
//
// Redirects are not followed: the APIs never redirect a call, and following one would resend
// credentials (or turn a POST into a GET) towards a place the operator was not configured for.
// The 3xx response is returned to the caller instead.
func NewHTTPClient(caBundlePEM []byte, timeout time.Duration) (*http.Client, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caBundlePEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caBundlePEM) {
			return nil, ErrNoCertificates
		}
		tlsConfig.RootCAs = pool
	}
	transport := &http.Transport{
		// Egress proxies are common in clusters; honour the usual environment variables.
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   dialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ResponseHeaderTimeout: min(responseHeaderTimeout, timeout),
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       idleConnTimeout,
		MaxIdleConns:          maxIdleConns,
		MaxIdleConnsPerHost:   maxIdleConnsPerHost,
		// A custom TLS config and dialer disable HTTP/2 unless asked for explicitly.
		ForceAttemptHTTP2: true,
	}
	return &http.Client{
		Transport:     transport,
		Timeout:       timeout,
		CheckRedirect: noRedirect,
	}, nil
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// maxCachedClients bounds the clients HTTPClients keeps for CA bundles: bundles change rarely, but a
// rotating bundle must not grow the cache (and its idle connections) forever.
const maxCachedClients = 32

// HTTPClients hands out one *http.Client per distinct CA bundle (keyed by the SHA-256 of the
// PEM), so reconciles share transports and connection pools instead of building one per call.
// The zero value is ready to use with DefaultTimeout. Safe for concurrent use.
//
// The system-roots client (no bundle), which most objects share, is kept for good; the bundle clients
// are a bounded LRU, so many one-off bundles churn among themselves and never close the pool of the
// default client or of a bundle in steady use.
type HTTPClients struct {
	// Timeout is passed to NewHTTPClient; set it before first use.
	Timeout time.Duration

	mu      sync.Mutex
	system  *http.Client
	clients map[[sha256.Size]byte]*list.Element // of *cachedClient
	lru     list.List                           // front: most recently used
}

type cachedClient struct {
	key    [sha256.Size]byte
	client *http.Client
}

// NewHTTPClients returns a cache whose clients use timeout (see NewHTTPClient).
func NewHTTPClients(timeout time.Duration) *HTTPClients {
	return &HTTPClients{Timeout: timeout}
}

// Get returns the shared client for caBundlePEM (empty: system roots), building it on first use.
// An unusable bundle returns the NewHTTPClient error and is not cached.
func (c *HTTPClients) Get(caBundlePEM []byte) (*http.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(caBundlePEM) == 0 {
		if c.system == nil {
			hc, err := NewHTTPClient(nil, c.Timeout)
			if err != nil {
				return nil, err
			}
			c.system = hc
		}
		return c.system, nil
	}
	key := sha256.Sum256(caBundlePEM)
	if el, ok := c.clients[key]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*cachedClient).client, nil
	}
	hc, err := NewHTTPClient(caBundlePEM, c.Timeout)
	if err != nil {
		return nil, err
	}
	if c.clients == nil {
		c.clients = make(map[[sha256.Size]byte]*list.Element)
	}
	for len(c.clients) >= maxCachedClients {
		// Callers still holding the evicted client keep a working one; only its idle connections close.
		old := c.lru.Remove(c.lru.Back()).(*cachedClient)
		old.client.CloseIdleConnections()
		delete(c.clients, old.key)
	}
	c.clients[key] = c.lru.PushFront(&cachedClient{key: key, client: hc})
	return hc, nil
}

// Len is the number of cached bundle clients (the system-roots client not counted).
func (c *HTTPClients) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.clients)
}
