package thingspace

import (
	"context"
	"net/http"

	"github.com/credops/thingspace-operator/internal/upstream"
)

// call describes one request; every API family builds calls and sends them through do, whose
// upstream.Engine keeps bounds, observation and error hygiene in one place. What is ThingSpace's
// own is the error vocabulary: errorBody, and a classification per API family.
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

// do sends cl and returns its 2xx response; every other outcome is an *upstream.Error. See
// upstream.Engine.Do.
func (c *Client) do(ctx context.Context, cl call) (upstream.Response, error) {
	return c.eng.Do(ctx, upstream.Request{
		Endpoint:    cl.endpoint,
		Method:      cl.method,
		Path:        cl.path,
		Header:      cl.header,
		ContentType: cl.contentType,
		Body:        cl.body,
		ReadBody:    cl.readBody,
		Classify: func(status int, body []byte) (string, upstream.Kind) {
			eb := parseErrorBody(body)
			return eb.code(), cl.classify(status, eb)
		},
	})
}

// malformed is the error for a 2xx response this client cannot use (see upstream.Malformed).
// reason must be a fixed string.
func malformed(endpoint string, status int, reason string, cause error) error {
	return upstream.Malformed(API, endpoint, status, reason, cause)
}
