package thingspace

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/utils/clock"

	"github.com/credops/thingspace-operator/internal/upstream"
)

// API is the name this client gives upstream.Error.API.
const API = "thingspace"

// DefaultBaseURL is the production host. Tests, simulators and proxies override it.
const DefaultBaseURL = "https://thingspace.verizon.com"

// DefaultRequestTimeout bounds one call when WithRequestTimeout is not given.
const DefaultRequestTimeout = 30 * time.Second

const userAgent = "thingspace-operator"

// Client calls one ThingSpace host. It holds no credentials and no state, so one Client can
// serve every object pointing at the same host. Safe for concurrent use.
type Client struct {
	base      *url.URL
	hc        *http.Client
	observe   upstream.Observer
	clock     clock.PassiveClock
	timeout   time.Duration
	bodyLimit int64
}

// Option configures a Client.
type Option func(*Client)

// WithObserver reports every request to o (see upstream.Observer).
func WithObserver(o upstream.Observer) Option { return func(c *Client) { c.observe = o } }

// WithClock sets the clock that turns a Retry-After HTTP-date into a delay.
func WithClock(clk clock.PassiveClock) Option {
	return func(c *Client) {
		if clk != nil {
			c.clock = clk
		}
	}
}

// WithRequestTimeout bounds each call (default DefaultRequestTimeout). It applies through the
// context, so a caller's earlier deadline still wins. Non-positive values are ignored: a call
// without a bound could hang a reconcile worker.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// New returns a client for baseURL, an absolute http or https URL without user info, query or
// fragment; it may carry a path prefix (for a proxy), e.g. "https://proxy.example/thingspace".
//
// hc is normally from upstream.NewHTTPClient or upstream.HTTPClients; nil means a fresh
// upstream.NewHTTPClient with system roots. The Client uses a shallow copy of hc that never
// follows redirects: a redirect would resend the Basic credentials, or turn the POST into a
// GET, towards a URL nobody configured. hc's transport (and its connection pool) is shared.
func New(baseURL string, hc *http.Client, opts ...Option) (*Client, error) {
	base, err := parseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		if hc, err = upstream.NewHTTPClient(nil, 0); err != nil {
			return nil, err
		}
	}
	own := *hc
	own.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c := &Client{
		base:      base,
		hc:        &own,
		clock:     clock.RealClock{},
		timeout:   DefaultRequestTimeout,
		bodyLimit: upstream.DefaultBodyLimit,
	}
	for _, opt := range opts {
		opt(c)
	}
	return c, nil
}

// parseBaseURL validates baseURL. Its errors quote nothing from it: a URL pasted with
// credentials in it must not be echoed into a status condition.
func parseBaseURL(baseURL string) (*url.URL, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, errors.New("thingspace: base URL does not parse")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("thingspace: base URL must be an absolute http or https URL")
	case u.Opaque != "" || u.Host == "":
		return nil, errors.New("thingspace: base URL must have a host")
	case u.User != nil:
		// Secrets never go into URLs: transport errors and proxies print URLs.
		return nil, errors.New("thingspace: base URL must not carry user info")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(baseURL, "?#"):
		return nil, errors.New("thingspace: base URL must not have a query or fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// endpointURL joins the base path prefix and an API path that starts with "/".
func (c *Client) endpointURL(path string) string {
	u := *c.base
	u.Path = c.base.Path + path
	return u.String()
}
