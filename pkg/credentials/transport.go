package credentials

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"k8s.io/utils/clock"
)

const (
	// DefaultMaxWait bounds how long a request waits for a newer credential after a rejection, or for
	// any credential when the source has none.
	DefaultMaxWait = 5 * time.Second
	// DefaultMaxReplayBody is the largest request body without GetBody that is buffered so that the
	// request can be retried; a longer one is streamed and never retried.
	DefaultMaxReplayBody = 1 << 20
	// maxErrorBody bounds how much of an error response is read to recognise a rejection.
	maxErrorBody = 64 << 10
)

// Transport is an http.RoundTripper that authenticates each request with the Source's current
// credential: Authorization "<token_type> <access_token>", and VZ-M2M-Token for an M2M session. When
// the upstream rejects the credential (gateway 401 fault 900901, or an M2M errorCode containing
// ".SessionToken."), it re-reads the Source, waits at most MaxWait for a newer credential if it has
// none, and retries the request exactly once; without a newer credential, or when the body cannot be
// replayed, the caller gets the rejection itself with its body intact.
//
// It never fetches a token: the operator is the only writer. It sends the credential to whatever host
// a request names, so give it only requests for ThingSpace; a redirect that http.Client follows to
// another host goes out without it. The zero value of every field but Source is usable.
type Transport struct {
	// Source yields the credential. Required.
	Source Source
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// MaxWait bounds each wait for a credential; 0 means DefaultMaxWait, negative means no waiting.
	MaxWait time.Duration
	// MaxReplayBody: see DefaultMaxReplayBody; 0 means the default, negative means never buffer.
	MaxReplayBody int64
	// Observe, when set, is called synchronously for every Event; it must be quick.
	Observe func(Event)
	// Clock measures ages and bounds waits; nil means the real clock.
	Clock clock.Clock
}

var _ http.RoundTripper = (*Transport)(nil)

// RoundTrip sends req with the current credential; see Transport.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if offHost(req) {
		// A redirect to another host (http.Client follows them through this RoundTrip) must not carry the
		// credential there.
		return t.base().RoundTrip(req)
	}
	ctx := req.Context()
	cred, err := t.credential(ctx)
	if err != nil {
		closeBody(req)
		t.observe(Event{Kind: EventNoCredential, Err: err})
		return nil, err
	}
	body, replay, err := prepareBody(req, t.maxReplayBody())
	if err != nil {
		return nil, err
	}
	t.observe(t.credEvent(EventRequest, cred))
	resp, err := t.base().RoundTrip(authorized(req, cred, body, replay))
	if err != nil {
		return nil, err
	}
	reason := rejection(resp)
	if reason == "" {
		return resp, nil
	}
	ev := t.credEvent(EventRejected, cred)
	ev.Reason, ev.Status = reason, resp.StatusCode
	t.observe(ev)
	if replay == nil {
		return resp, nil
	}
	newer, ok := t.newer(ctx, cred.Version)
	if !ok {
		return resp, nil
	}
	body, err = replay()
	if err != nil {
		return resp, nil //nolint:nilerr // the rejection is the better answer than a replay failure
	}
	discard(resp)
	t.observe(t.credEvent(EventRetry, newer))
	return t.base().RoundTrip(authorized(req, newer, body, replay))
}

// CloseIdleConnections closes the idle connections of Base, so http.Client.CloseIdleConnections works
// through a Transport.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base().(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// offHost reports whether req is a redirect, followed by http.Client, to a host other than the one
// the previous request went to.
func offHost(req *http.Request) bool {
	prev := req.Response
	return prev != nil && prev.Request != nil && prev.Request.URL != nil && req.URL != nil &&
		!strings.EqualFold(prev.Request.URL.Host, req.URL.Host)
}

// credential returns the current credential, waiting up to MaxWait for one when there is none.
func (t *Transport) credential(ctx context.Context) (Credential, error) {
	c, err := t.Source.Current(ctx)
	if err == nil || !errors.Is(err, ErrExpired) && !errors.Is(err, ErrNoCredential) {
		return c, err
	}
	if w, ok := t.wait(ctx, ""); ok {
		return w, nil
	}
	return Credential{}, err
}

// newer returns a credential other than the rejected version: at once if the source already holds
// one (after a re-read), else after waiting up to MaxWait.
func (t *Transport) newer(ctx context.Context, rejected string) (Credential, bool) {
	var c Credential
	var err error
	if r, ok := t.Source.(Refresher); ok {
		c, err = r.Refresh(ctx)
	} else {
		c, err = t.Source.Current(ctx)
	}
	if err == nil && c.Version != rejected {
		return c, true
	}
	return t.wait(ctx, rejected)
}

// wait runs WaitNewer bounded by MaxWait on the transport's clock, and reports it.
func (t *Transport) wait(ctx context.Context, version string) (Credential, bool) {
	d := t.MaxWait
	if d == 0 {
		d = DefaultMaxWait
	}
	if d < 0 {
		return Credential{}, false
	}
	clk := t.clock()
	start := clk.Now()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := clk.NewTimer(d)
	defer timer.Stop()
	go func() {
		select {
		case <-timer.C():
			cancel()
		case <-wctx.Done():
		}
	}()
	c, err := t.Source.WaitNewer(wctx, version)
	ev := Event{Kind: EventWait, Waited: clk.Since(start), Newer: err == nil}
	if err == nil {
		ev.Version = c.Version
	}
	t.observe(ev)
	return c, err == nil
}

func (t *Transport) credEvent(kind EventKind, c Credential) Event {
	now := t.clock().Now()
	return Event{Kind: kind, Version: c.Version, Age: now.Sub(c.ObservedAt), ExpiresIn: c.ExpiresAt.Sub(now)}
}

func (t *Transport) observe(e Event) {
	if t.Observe != nil {
		t.Observe(e)
	}
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

func (t *Transport) clock() clock.Clock {
	if t.Clock != nil {
		return t.Clock
	}
	return clock.RealClock{}
}

func (t *Transport) maxReplayBody() int64 {
	if t.MaxReplayBody == 0 {
		return DefaultMaxReplayBody
	}
	return t.MaxReplayBody
}

// authorized is a copy of req carrying cred and body; req itself is never modified.
func authorized(req *http.Request, cred Credential, body io.ReadCloser, replay func() (io.ReadCloser, error)) *http.Request {
	out := req.Clone(req.Context())
	out.Body = body
	if replay != nil {
		out.GetBody = replay
	}
	out.Header.Set("Authorization", cred.Authorization())
	if cred.IsSession() {
		out.Header.Set(SessionHeader, cred.SessionToken)
	}
	return out
}
