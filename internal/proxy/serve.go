package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server limits. The proxy's clients are local and its requests small: a header over 64 KiB or a
// client that takes 10 s to send its headers is a fault, not a workload.
const (
	proxyMaxHeaderBytes  = 64 << 10
	healthMaxHeaderBytes = 16 << 10
	readHeaderTimeout    = 10 * time.Second
	idleTimeout          = 90 * time.Second
	// writeSlack is what the proxy server's WriteTimeout allows past the upstream timeout, to
	// write out the answer.
	writeSlack = 30 * time.Second
)

// ServeOptions configure Serve.
type ServeOptions struct {
	Proxy, Health                 http.Handler
	ProxyListener, HealthListener net.Listener
	// UpstreamTimeout is the handler's per-request bound; the server's write timeout is above it.
	UpstreamTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown once ctx ends.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
}

// NewProxyServer is the http.Server of the proxy port, with bounded headers and timeouts.
func NewProxyServer(h http.Handler, upstreamTimeout time.Duration, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		// The whole exchange (a body streaming up, the answer streaming down) is bounded by the
		// upstream timeout, plus slack to write the proxy's own answer when it strikes.
		ReadTimeout:    upstreamTimeout + writeSlack,
		WriteTimeout:   upstreamTimeout + writeSlack,
		IdleTimeout:    idleTimeout,
		MaxHeaderBytes: proxyMaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(orDiscard(log).Handler(), slog.LevelWarn),
	}
}

// NewHealthServer is the http.Server of the health and metrics port.
func NewHealthServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    healthMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(orDiscard(log).Handler(), slog.LevelWarn),
	}
}

// Serve serves both ports until ctx ends (SIGTERM) or one fails, then shuts both down gracefully:
// no new connections, requests in flight finish within ShutdownTimeout. It returns the first
// serving error, or nil after a clean shutdown.
func Serve(ctx context.Context, o ServeOptions) error {
	o.Logger = orDiscard(o.Logger)
	servers := []*http.Server{
		NewProxyServer(o.Proxy, o.UpstreamTimeout, o.Logger),
		NewHealthServer(o.Health, o.Logger),
	}
	listeners := []net.Listener{o.ProxyListener, o.HealthListener}
	errc := make(chan error, len(servers))
	for i, s := range servers {
		go func() {
			if err := s.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
				return
			}
			errc <- nil
		}()
	}
	var first error
	select {
	case <-ctx.Done():
		o.Logger.Info("shutting down", "timeout", o.ShutdownTimeout)
	case first = <-errc:
		o.Logger.Error("server failed, shutting down", "err", first)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.ShutdownTimeout)
	defer cancel()
	var errs []error
	for _, s := range servers {
		if err := s.Shutdown(sctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(append([]error{first}, errs...)...)
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
