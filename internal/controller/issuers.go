package controller

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"k8s.io/utils/clock"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/cloudapi"
	"github.com/credops/thingspace-operator/internal/endpoints"
	"github.com/credops/thingspace-operator/internal/metrics"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// endpointError says an endpoint in a spec cannot be used; waiting will not help, a spec change (or a
// manager started with other flags) will. reason is the Ready condition's reason.
type endpointError struct{ reason, msg string }

func (e *endpointError) Error() string { return e.msg }

func invalidEndpointError(msg string) *endpointError {
	return &endpointError{reason: v1alpha1.ReasonInvalidEndpoint, msg: msg}
}

// endpointReason is the Ready reason for an error of Endpoints (InvalidEndpoint or EndpointNotAllowed);
// every controller that asks Endpoints for a client (the cluster kinds' too) sets Ready with it.
func endpointReason(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*endpointError](err); ok {
		return e.reason
	}
	return v1alpha1.ReasonInvalidEndpoint
}

// Endpoints builds upstream clients for the endpoints named in specs, applying the manager's policy
// (hosts only from --allowed-endpoint-hosts, plain http only with --allow-insecure-endpoints) and
// sharing one HTTP transport per CA bundle. Every upstream client of the controllers and the callback
// comes from here, so no request (token, login, refresh, revoke, logout, code exchange) reaches a
// host the list does not allow.
type Endpoints struct {
	HTTP          *upstream.HTTPClients
	Clock         clock.PassiveClock
	AllowInsecure bool
	// Allowed are the hosts requests may go to; the zero list allows none.
	Allowed endpoints.AllowList
	// RequestTimeout bounds one upstream request.
	RequestTimeout time.Duration
}

// check validates endpoint against the policy.
func (e *Endpoints) check(endpoint string) error {
	u, err := url.Parse(endpoint)
	// Messages never quote the endpoint: a URL pasted with user info in it must not reach a condition.
	if err != nil || u.Host == "" || u.User != nil {
		return invalidEndpointError("endpoint is not an absolute URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return invalidEndpointError("endpoint must use https")
	}
	if !e.Allowed.Allows(u) {
		// The host and port only: they carry no secret, and they are what the admin would have to list.
		what := "endpoint host"
		if host, port, ok := endpoints.HostPort(u); ok {
			what += " " + net.JoinHostPort(host, strconv.Itoa(port))
		}
		return &endpointError{reason: v1alpha1.ReasonEndpointNotAllowed,
			msg: what + " is not in the manager's --allowed-endpoint-hosts; nothing is sent there"}
	}
	if u.Scheme == "http" && !e.AllowInsecure {
		return invalidEndpointError("endpoint uses plain http; the manager refuses it unless started with --allow-insecure-endpoints")
	}
	return nil
}

// CheckCallback validates a CloudAuthorization's callbackURL: the authorization code travels to it,
// so it must be https unless the manager runs with --allow-insecure-endpoints.
func (e *Endpoints) CheckCallback(callbackURL string) error {
	u, err := url.Parse(callbackURL)
	if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return invalidEndpointError("callbackURL is not an absolute http or https URL")
	}
	if u.Scheme == "http" && !e.AllowInsecure {
		return invalidEndpointError("callbackURL uses plain http; the manager refuses it unless started with --allow-insecure-endpoints (the authorization code would cross the network in clear)")
	}
	return nil
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
		return nil, invalidEndpointError(err.Error())
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
		return nil, invalidEndpointError(err.Error())
	}
	return c, nil
}

// httpClient applies the endpoint policy and returns the shared HTTP client for caBundle.
func (e *Endpoints) httpClient(endpoint string, caBundle []byte) (*http.Client, error) {
	// The check comes first: a host that is not allowed gets no client, so its caBundle is not even
	// parsed, let alone trusted.
	if err := e.check(endpoint); err != nil {
		return nil, err
	}
	hc, err := e.HTTP.Get(caBundle)
	if err != nil {
		return nil, invalidEndpointError("caBundle holds no usable PEM certificate")
	}
	return hc, nil
}
