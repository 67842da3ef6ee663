package thingspace

import (
	"net/http"
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
	eng *upstream.Engine

	// Set by the options; New hands them to eng.
	observe upstream.Observer
	clock   clock.PassiveClock
	timeout time.Duration
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
	c := &Client{clock: clock.RealClock{}, timeout: DefaultRequestTimeout}
	for _, opt := range opts {
		opt(c)
	}
	eng, err := upstream.NewEngine(upstream.EngineConfig{
		API:        API,
		BaseURL:    baseURL,
		HTTPClient: hc,
		UserAgent:  userAgent,
		Observer:   c.observe,
		Clock:      c.clock,
		Timeout:    c.timeout,
	})
	if err != nil {
		return nil, err
	}
	c.eng = eng
	return c, nil
}
