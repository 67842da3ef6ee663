package cloudapi

import (
	"net/http"
	"time"

	"k8s.io/utils/clock"

	"github.com/credops/thingspace-operator/internal/upstream"
	"github.com/credops/thingspace-operator/internal/upstream/oauth"
)

// API is the name this client gives upstream.Error.API.
const API = "cloud"

// DefaultBaseURL is the production base, API version path included; the endpoint paths are
// relative to it. Tests, simulators and proxies override it.
const DefaultBaseURL = "https://api.cloudapi.verizon.com/cloud/1"

// Endpoint names given to the Observer and upstream.Error.Endpoint.
const (
	EndpointCodeExchange = "code_exchange"
	EndpointRefresh      = "refresh"
	EndpointAccount      = "account"
)

const userAgent = "thingspace-operator"

// Credentials are the app's client key (client_id) and client secret from Verizon's Key
// Management. Every way of printing them (fmt verbs, JSON, slog, logr) redacts Secret; only the
// Authorization header of a token request carries it.
type Credentials = oauth.Credentials[credentialsName]

// credentialsName makes %#v of Credentials read "cloudapi.Credentials{...}".
type credentialsName struct{}

func (credentialsName) GoName() string { return "cloudapi.Credentials" }

// Client calls one Verizon Cloud API base. It holds no credentials and no state, so one Client
// can serve every object pointing at the same base. Safe for concurrent use.
type Client struct {
	eng *upstream.Engine
}

// Option configures a Client.
type Option func(*upstream.EngineConfig)

// WithObserver reports every request to o (see upstream.Observer).
func WithObserver(o upstream.Observer) Option {
	return func(c *upstream.EngineConfig) { c.Observer = o }
}

// WithClock sets the clock that turns a Retry-After HTTP-date into a delay. nil is ignored.
func WithClock(clk clock.PassiveClock) Option {
	return func(c *upstream.EngineConfig) {
		if clk != nil {
			c.Clock = clk
		}
	}
}

// WithRequestTimeout bounds each call (default upstream.DefaultTimeout, 30s). It applies through
// the context, so a caller's earlier deadline still wins. Non-positive values are ignored: a call
// without a bound could hang a reconcile worker.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *upstream.EngineConfig) {
		if d > 0 {
			c.Timeout = d
		}
	}
}

// New returns a client for baseURL (normally DefaultBaseURL), an absolute http or https URL
// without user info, query or fragment, whose path is the API's base, e.g.
// "https://proxy.example/verizon/cloud/1".
//
// hc is normally from upstream.NewHTTPClient or upstream.HTTPClients; nil means a fresh
// upstream.NewHTTPClient with system roots. The Client uses a shallow copy of hc that never
// follows redirects; hc's transport (and its connection pool) is shared.
func New(baseURL string, hc *http.Client, opts ...Option) (*Client, error) {
	cfg := upstream.EngineConfig{API: API, BaseURL: baseURL, HTTPClient: hc, UserAgent: userAgent}
	for _, opt := range opts {
		opt(&cfg)
	}
	eng, err := upstream.NewEngine(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{eng: eng}, nil
}
