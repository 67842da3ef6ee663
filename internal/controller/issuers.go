package controller

import (
	"net/http"
	"net/url"
	"time"

	"k8s.io/utils/clock"

	"github.com/credops/thingspace-operator/internal/cloudapi"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// endpointError says an endpoint in a spec cannot be used; waiting will not help, a spec change will.
type endpointError struct{ reason string }

func (e *endpointError) Error() string { return e.reason }

// Endpoints builds upstream clients for the endpoints named in specs, applying the manager's policy
// (plain http only with --allow-insecure-endpoints) and sharing one HTTP transport per CA bundle.
type Endpoints struct {
	HTTP          *upstream.HTTPClients
	Clock         clock.PassiveClock
	AllowInsecure bool
	// RequestTimeout bounds one upstream request.
	RequestTimeout time.Duration
}

// check validates endpoint against the policy.
func (e *Endpoints) check(endpoint string) error {
	u, err := url.Parse(endpoint)
	// Messages never quote the endpoint: a URL pasted with user info in it must not reach a condition.
	if err != nil || u.Host == "" || u.User != nil {
		return &endpointError{reason: "endpoint is not an absolute URL"}
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if e.AllowInsecure {
			return nil
		}
		return &endpointError{reason: "endpoint uses plain http; the manager refuses it unless started with --allow-insecure-endpoints"}
	}
	return &endpointError{reason: "endpoint must use https"}
}

// ThingSpace returns a ThingSpace API client for endpoint, trusting caBundle when set.
func (e *Endpoints) ThingSpace(endpoint string, caBundle []byte) (*thingspace.Client, error) {
	hc, err := e.httpClient(endpoint, caBundle)
	if err != nil {
		return nil, err
	}
	c, err := thingspace.New(endpoint, hc,
		thingspace.WithObserver(metrics.Observer(thingspace.API)),
		thingspace.WithClock(e.Clock),
		thingspace.WithRequestTimeout(e.RequestTimeout))
	if err != nil {
		return nil, &endpointError{reason: err.Error()}
	}
	return c, nil
}

// Cloud returns a Verizon Cloud API client for endpoint, trusting caBundle when set.
func (e *Endpoints) Cloud(endpoint string, caBundle []byte) (*cloudapi.Client, error) {
	hc, err := e.httpClient(endpoint, caBundle)
	if err != nil {
		return nil, err
	}
	c, err := cloudapi.New(endpoint, hc,
		cloudapi.WithObserver(metrics.Observer(cloudapi.API)),
		cloudapi.WithClock(e.Clock),
		cloudapi.WithRequestTimeout(e.RequestTimeout))
	if err != nil {
		return nil, &endpointError{reason: err.Error()}
	}
	return c, nil
}

// httpClient applies the endpoint policy and returns the shared HTTP client for caBundle.
func (e *Endpoints) httpClient(endpoint string, caBundle []byte) (*http.Client, error) {
	if err := e.check(endpoint); err != nil {
		return nil, err
	}
	hc, err := e.HTTP.Get(caBundle)
	if err != nil {
		return nil, &endpointError{reason: "caBundle holds no usable PEM certificate"}
	}
	return hc, nil
}
