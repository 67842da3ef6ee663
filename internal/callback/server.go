package callback

import (
	"context"
	"net"
	"net/http"
	"time"
)

// DefaultDrainTimeout bounds how long the server waits for open requests once shutdown begins. It
// is short on purpose (issue 8 scenario 18): controller-runtime stops this runnable first and waits
// for it out of the manager's graceful budget, which the reconcilers' in-flight refreshes need. The
// code exchanges that must finish do not depend on it: they are registered with internal/inflight,
// run on a detached context and are waited for by the manager's main after the manager stops. What
// this bound cuts short is only a browser waiting for a state lookup or its page.
const DefaultDrainTimeout = 3 * time.Second

// Server runs the handler on its own listener, on every replica.
type Server struct {
	// Listener is used when set (tests); otherwise Addr is listened on.
	Listener net.Listener
	Addr     string
	Handler  http.Handler
	// DrainTimeout bounds the graceful shutdown of open requests; zero means DefaultDrainTimeout.
	DrainTimeout time.Duration
}

// NeedLeaderElection is false: the callback must answer on whichever replica the browser reaches.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves until ctx ends, then drains open requests for at most DrainTimeout.
func (s *Server) Start(ctx context.Context) error {
	ln := s.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.Addr); err != nil {
			return err
		}
	}
	srv := &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute, // a code exchange is bounded by the upstream timeout
		MaxHeaderBytes:    16 << 10,
		// Not ctx: a request's context must not end with the server's (the handler detaches the
		// exchange anyway, but a lookup in progress should finish within the drain).
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
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
