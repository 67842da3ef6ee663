package thingspace

import (
	"bytes"
	"context"
	"errors"
	"net/http"

	"github.com/credops/thingspace-operator/internal/upstream"
)

// call describes one request; every API family builds calls and sends them through do, so
// bounds, observation and error hygiene live in one place.
type call struct {
	endpoint    string // short name for the Observer and errors, e.g. "token"
	method      string
	path        string // API path from the host root, e.g. "/api/ts/v1/oauth2/token"
	header      http.Header
	contentType string
	body        []byte
	// readBody: a 2xx body is needed. When false, a 2xx is success whatever its body.
	readBody bool
	// classify sorts a non-2xx response; each API family has its own error vocabulary.
	classify func(status int, eb errorBody) upstream.Kind
}

// response is a 2xx answer.
type response struct {
	status int
	header http.Header
	body   []byte // nil unless call.readBody
}

// do sends cl and returns its 2xx response; every other outcome is an *upstream.Error. It
// observes exactly once per request sent, and always drains and closes the body.
func (c *Client) do(ctx context.Context, cl call) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, cl.method, c.endpointURL(cl.path), bytes.NewReader(cl.body))
	if err != nil {
		// Not sent, so not observed. The cause is dropped from the message (it quotes the URL).
		return response{}, upstream.NewError(API, cl.endpoint, 0, upstream.Invalid, "cannot build request", err)
	}
	for k, vs := range cl.header {
		req.Header[k] = vs
	}
	if cl.contentType != "" {
		req.Header.Set("Content-Type", cl.contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)

	resp, err := c.hc.Do(req)
	if err != nil {
		c.observe.Observe(cl.endpoint, 0)
		return response{}, upstream.TransportError(API, cl.endpoint, err)
	}
	defer upstream.DrainAndClose(resp.Body)

	status := resp.StatusCode
	if status >= 200 && status < 300 {
		if !cl.readBody {
			c.observe.Observe(cl.endpoint, status)
			return response{status: status, header: resp.Header}, nil
		}
		body, err := upstream.ReadBody(resp.Body, c.bodyLimit)
		switch {
		case errors.Is(err, upstream.ErrBodyTooLarge):
			c.observe.Observe(cl.endpoint, status)
			return response{}, malformed(cl.endpoint, status, "body exceeds limit", err)
		case err != nil:
			// The exchange did not complete: observe it as the failure the caller sees.
			c.observe.Observe(cl.endpoint, 0)
			return response{}, upstream.TransportError(API, cl.endpoint, err)
		}
		c.observe.Observe(cl.endpoint, status)
		return response{status: status, header: resp.Header, body: body}, nil
	}

	// An error response is classified by its status and, when readable, its code. A body that
	// cannot be read (too large, cut off) leaves just the status, which is enough to classify.
	c.observe.Observe(cl.endpoint, status)
	var eb errorBody
	if body, err := upstream.ReadBody(resp.Body, c.bodyLimit); err == nil {
		eb = parseErrorBody(body)
	}
	retryAfter, _ := upstream.ParseRetryAfter(resp.Header.Get("Retry-After"), c.clock.Now())
	return response{}, upstream.StatusError(API, cl.endpoint, status, eb.code(), cl.classify(status, eb), retryAfter)
}

// malformed is the error for a 2xx response this client cannot use. It is Transient: a 2xx
// means the upstream accepted the credentials, so Rejected or Invalid would park the object
// until a Secret change that cannot fix anything; the causes seen in practice (a body cut off,
// an HTML page from an intercepting proxy, a gateway glitch) clear on their own, and the
// controller's capped backoff bounds the cost of trying again. reason must be a fixed string.
func malformed(endpoint string, status int, reason string, cause error) error {
	return upstream.NewError(API, endpoint, status, upstream.Transient, "malformed response: "+reason, cause)
}
