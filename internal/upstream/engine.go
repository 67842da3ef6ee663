package upstream

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// EngineConfig configures NewEngine. Zero values mean the defaults given per field.
type EngineConfig struct {
	// API names the upstream in every error (Error.API), e.g. "thingspace".
	API string
	// BaseURL is the API's base, checked by ParseBaseURL; request paths are appended to it.
	BaseURL string
	// HTTPClient is normally from NewHTTPClient or HTTPClients; nil means a fresh NewHTTPClient
	// with system roots. The engine uses a shallow copy that never follows redirects: a redirect
	// would resend credentials, or turn a POST into a GET, towards a URL nobody configured. The
	// transport (and its connection pool) stays shared; the caller's client is not modified.
	HTTPClient *http.Client
	// UserAgent is sent with every request.
	UserAgent string
	// Observer is told of every request sent (see Observer); nil: no one.
	Observer Observer
	// Clock turns a Retry-After HTTP-date into a delay; nil: the real clock.
	Clock clock.PassiveClock
	// Timeout bounds each call; zero or negative: DefaultTimeout, never "no bound". It applies
	// through the call's context, so a caller's earlier deadline still wins.
	Timeout time.Duration
	// BodyLimit bounds every response body read; zero or negative: DefaultBodyLimit.
	BodyLimit int64
}

// Engine sends the requests of one API client to one base URL and turns every outcome but a 2xx
// into an *Error: bounded in time and size, observed exactly once per request sent, never
// following redirects, with Retry-After parsed and the error response classified by the API's
// own Classifier. It holds no credentials and no state, so it is safe for concurrent use.
type Engine struct {
	api       string
	userAgent string
	base      *url.URL
	hc        *http.Client
	observe   Observer
	clock     clock.PassiveClock
	timeout   time.Duration
	bodyLimit int64
}

// NewEngine checks cfg and returns its Engine. Its errors quote nothing from cfg.BaseURL.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	base, err := ParseBaseURL(cfg.API, cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		if hc, err = NewHTTPClient(nil, 0); err != nil {
			return nil, err
		}
	}
	own := *hc
	own.CheckRedirect = noRedirect
	e := &Engine{
		api:       cfg.API,
		userAgent: cfg.UserAgent,
		base:      base,
		hc:        &own,
		observe:   cfg.Observer,
		clock:     cfg.Clock,
		timeout:   cfg.Timeout,
		bodyLimit: cfg.BodyLimit,
	}
	if e.clock == nil {
		e.clock = clock.RealClock{}
	}
	if e.timeout <= 0 {
		e.timeout = DefaultTimeout
	}
	if e.bodyLimit <= 0 {
		e.bodyLimit = DefaultBodyLimit
	}
	return e, nil
}

// URL joins the base URL's path prefix and path, which starts with "/", and sets rawQuery, which
// must already be encoded ("" for none).
func (e *Engine) URL(path, rawQuery string) string {
	u := *e.base
	u.Path = e.base.Path + path
	u.RawQuery = rawQuery
	return u.String()
}

// Classifier sorts a non-2xx response by its status and its body (nil when the body could not be
// read in full, which leaves the status to decide). It returns the Kind and the value for
// Error.Code: a code from the API's known vocabulary, or "", never free text from the body.
type Classifier func(status int, body []byte) (code string, kind Kind)

// Request is one call for Engine.Do.
type Request struct {
	// Endpoint is the short name for the Observer and errors, e.g. "token".
	Endpoint string
	Method   string
	// Path is appended to the base URL's path; it starts with "/".
	Path string
	// Header is added to the request; Accept and User-Agent are set by the engine.
	Header      http.Header
	ContentType string
	Body        []byte
	// ReadBody: the 2xx body is needed. When false, a 2xx is success whatever its body.
	ReadBody bool
	// Classify sorts a non-2xx response; each API family has its own error vocabulary.
	Classify Classifier
}

// Response is a 2xx answer.
type Response struct {
	Status int
	Header http.Header
	// Body is nil unless Request.ReadBody.
	Body []byte
}

// Do sends r and returns its 2xx response; every other outcome is an *Error of e's API. It
// observes exactly once per request sent (a request refused before sending is not observed),
// and always drains and closes the response body.
//
// A transport failure after the request was written out in full is marked Error.Unanswered, and
// so is a 2xx whose body is cut off; whether it was written is what net/http's
// httptrace.WroteRequest reports for the last attempt (the transport may retry a request that
// was not written on a fresh connection).
func (e *Engine) Do(ctx context.Context, r Request) (Response, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	ctx, written := traceWritten(ctx)

	req, err := http.NewRequestWithContext(ctx, r.Method, e.URL(r.Path, ""), bytes.NewReader(r.Body))
	if err != nil {
		// Not sent, so not observed. The cause is dropped from the message (it quotes the URL).
		return Response{}, NewError(e.api, r.Endpoint, 0, Invalid, "cannot build request", err)
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", e.userAgent)

	resp, err := e.hc.Do(req)
	if err != nil {
		e.observe.Observe(r.Endpoint, 0)
		te := TransportError(e.api, r.Endpoint, err)
		te.Unanswered = written.Load()
		return Response{}, te
	}
	defer DrainAndClose(resp.Body)

	status := resp.StatusCode
	if status >= 200 && status < 300 {
		if !r.ReadBody {
			e.observe.Observe(r.Endpoint, status)
			return Response{Status: status, Header: resp.Header}, nil
		}
		body, err := ReadBody(resp.Body, e.bodyLimit)
		switch {
		case errors.Is(err, ErrBodyTooLarge):
			e.observe.Observe(r.Endpoint, status)
			return Response{}, Malformed(e.api, r.Endpoint, status, "body exceeds limit", err)
		case err != nil:
			// The exchange did not complete: observe it as the failure the caller sees. The
			// upstream accepted the request, but its answer is lost.
			e.observe.Observe(r.Endpoint, 0)
			te := TransportError(e.api, r.Endpoint, err)
			te.Unanswered = true
			return Response{}, te
		}
		e.observe.Observe(r.Endpoint, status)
		return Response{Status: status, Header: resp.Header, Body: body}, nil
	}

	// An error response is classified by its status and, when readable, its body. A body that
	// cannot be read (too large, cut off) leaves just the status, which is enough to classify.
	e.observe.Observe(r.Endpoint, status)
	body, err := ReadBody(resp.Body, e.bodyLimit)
	if err != nil {
		body = nil
	}
	code, kind := r.Classify(status, body)
	retryAfter, _ := ParseRetryAfter(resp.Header.Get("Retry-After"), e.clock.Now())
	return Response{}, StatusError(e.api, r.Endpoint, status, code, kind, retryAfter)
}

// traceWritten returns ctx with a client trace, and a flag that holds whether the last attempt
// at the request was written out in full. A new connection means a new attempt.
func traceWritten(ctx context.Context) (context.Context, *atomic.Bool) {
	written := new(atomic.Bool)
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn:      func(httptrace.GotConnInfo) { written.Store(false) },
		WroteRequest: func(info httptrace.WroteRequestInfo) { written.Store(info.Err == nil) },
	}), written
}
