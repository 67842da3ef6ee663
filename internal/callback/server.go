package callback

import (
	"context"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
	"golang.org/x/time/rate"

	"github.com/credops/thingspace-operator/internal/consent"
)

// DefaultDrainTimeout bounds how long the server waits for open requests once shutdown begins. It
// is short on purpose (issue 8 scenario 18): controller-runtime stops this runnable first and waits
// for it out of the manager's graceful budget, which the reconcilers' in-flight refreshes need. The
// code exchanges that must finish do not depend on it: they are registered with internal/inflight,
// run on a detached context and are waited for by the manager's main after the manager stops. What
// this bound cuts short is only a browser waiting for a state lookup or its page.
const DefaultDrainTimeout = 3 * time.Second

// The server's limits. It faces the internet and serves a handful of people a day: a cap far above
// that use bounds what a flood can cost (connections, goroutines, API lookups).
const (
	// DefaultMaxConnections bounds the connections open at once; more wait in the kernel's backlog.
	DefaultMaxConnections = 64
	// DefaultRate and DefaultBurst bound the requests looked at (token bucket, all clients together:
	// behind an ingress every client has the ingress's address); the rest get a 429 at once. A request
	// without its cookie costs no lookup, so the bound is about the ones that do.
	DefaultRate  = 50
	DefaultBurst = 100
	// Timeouts: a request's headers and body must arrive promptly; an answer may wait for a code
	// exchange (bounded by the upstream timeout); idle keep-alive connections are closed soon.
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 2 * time.Minute
	IdleTimeout       = 30 * time.Second
	// MaxHeaderBytes is ample for a callback URL and a few cookies.
	MaxHeaderBytes = 16 << 10
)

// Server runs the handler on its own listener, on every replica.
type Server struct {
	// Listener is used when set (tests); otherwise Addr is listened on.
	Listener net.Listener
	Addr     string
	Handler  http.Handler
	// DrainTimeout bounds the graceful shutdown of open requests; zero means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// MaxConnections, Rate and Burst: zero means the defaults above.
	MaxConnections int
	Rate           rate.Limit
	Burst          int
}

// NeedLeaderElection is false: the callback must answer on whichever replica the browser reaches.
func (s *Server) NeedLeaderElection() bool { return false }

// HTTPServer is the http.Server Start runs (its limits and the protective handler chain).
func (s *Server) HTTPServer(ctx context.Context) *http.Server {
	r, b := s.Rate, s.Burst
	if r == 0 {
		r = DefaultRate
	}
	if b <= 0 {
		b = DefaultBurst
	}
	return &http.Server{
		Handler:           Protect(s.Handler, rate.NewLimiter(r, b)),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		// Not ctx: a request's context must not end with the server's (the handler detaches the
		// exchange anyway, but a lookup in progress should finish within the drain).
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}

// Start serves until ctx ends, then drains open requests for at most DrainTimeout.
func (s *Server) Start(ctx context.Context) error {
	ln := s.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.Addr); err != nil {
			return err
		}
	}
	maxConns := s.MaxConnections
	if maxConns <= 0 {
		maxConns = DefaultMaxConnections
	}
	ln = netutil.LimitListener(ln, maxConns)
	srv := s.HTTPServer(ctx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		drain := s.DrainTimeout
		if drain <= 0 {
			drain = DefaultDrainTimeout
		}
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil && shutdownCtx.Err() == nil {
			return err
		}
		// Requests still open past the drain keep running: the exchanges among them are registered
		// with internal/inflight and waited for by main. The listener is closed either way.
		return nil
	}
}

// Protect puts the headers every answer carries on next's answers (no framing, no caching, no
// referrer: the start link's token and the callback's code are in URLs), and refuses requests over
// limiter's rate with a 429 before next sees them.
func Protect(next http.Handler, limiter *rate.Limiter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		hdr.Set("X-Frame-Options", "DENY")
		hdr.Set("Cache-Control", "no-store")
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("X-Content-Type-Options", "nosniff")
		if !limiter.Allow() {
			endpoint := endpointCallback
			if r.URL.Path == consent.StartPath {
				endpoint = endpointStart
			}
			RejectedTotal.WithLabelValues(endpoint, reasonRateLimited).Inc()
			hdr.Set("Retry-After", "1")
			writePage(w, outcome{http.StatusTooManyRequests, "Too many requests", "Please try again in a moment."})
			return
		}
		next.ServeHTTP(w, r)
	})
}
