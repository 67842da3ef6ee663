package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/credops/thingspace-operator/pkg/credentials"
)

// Sidecar is a started proxy: its source open, its two ports bound.
type Sidecar struct {
	// ProxyAddr and HealthAddr are the bound addresses (a port 0 resolved).
	ProxyAddr, HealthAddr net.Addr

	cfg     Config
	log     *slog.Logger
	src     credentials.Source
	tracker *Tracker
	opts    ServeOptions
}

// Start opens the credential source, builds the transport and handlers, and binds both ports.
// Serve then serves them.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Sidecar, error) {
	log = orDiscard(log)
	base, err := upstreamTransport(cfg)
	if err != nil {
		return nil, err
	}
	src, err := openSource(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Sidecar{cfg: cfg, log: log, src: src}
	if err := s.build(base); err != nil {
		_ = src.Close()
		return nil, err
	}
	return s, nil
}

func (s *Sidecar) build(base http.RoundTripper) error {
	m := NewMetrics(nil)
	s.tracker = NewTracker(s.src, m, s.log)
	m.ReportValidity(func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		return s.tracker.Ready(ctx) == nil
	})
	tr := &credentials.Transport{
		Source:        s.src,
		Base:          base,
		MaxWait:       s.cfg.MaxWait,
		MaxReplayBody: s.cfg.MaxReplayBody,
		Observe:       m.Observe,
	}
	h, err := NewHandler(HandlerOptions{
		Upstream: s.cfg.Upstream, Transport: tr, Timeout: s.cfg.Timeout,
		NoCredential: NoCredential, Metrics: m, Logger: s.log,
	})
	if err != nil {
		return err
	}
	pl, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	hl, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		_ = pl.Close()
		return fmt.Errorf("--metrics-listen: %w", err)
	}
	s.ProxyAddr, s.HealthAddr = pl.Addr(), hl.Addr()
	if a, ok := pl.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		s.log.Warn("the proxy port is not on loopback: whoever reaches it calls the upstream with this pod's credential", "listen", s.cfg.Listen)
	}
	s.opts = ServeOptions{
		Proxy: h, Health: HealthHandler(s.tracker.Ready, m.Registry),
		ProxyListener: pl, HealthListener: hl,
		UpstreamTimeout: s.cfg.Timeout, ShutdownTimeout: s.cfg.ShutdownTimeout, Logger: s.log,
	}
	return nil
}

// Serve serves until ctx ends (SIGTERM), shuts down gracefully and closes the source.
func (s *Sidecar) Serve(ctx context.Context) error {
	tctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.tracker.Run(tctx) }()
	s.log.Info("serving", "proxy", s.ProxyAddr.String(), "health", s.HealthAddr.String(), "upstream", s.cfg.Upstream.String())
	err := Serve(ctx, s.opts)
	stop()
	<-done
	return errors.Join(err, s.src.Close())
}

// openSource opens the one credential source the flags name.
func openSource(ctx context.Context, cfg Config) (credentials.Source, error) {
	if cfg.CredentialsDir != "" {
		src, err := credentials.NewDirSource(cfg.CredentialsDir)
		if err != nil {
			return nil, fmt.Errorf("--credentials-dir: %w", err)
		}
		return src, nil
	}
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("--secret: API client: %w", err)
	}
	rc.UserAgent = "thingspace-proxy"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("--secret: API client: %w", err)
	}
	src, err := credentials.NewSecretSource(ctx, cs, cfg.SecretNamespace, cfg.SecretName)
	if err != nil {
		return nil, fmt.Errorf("--secret: %w", err)
	}
	return src, nil
}

// upstreamTransport is the base transport to the upstream: TLS 1.2+ against the system roots plus
// --ca-file, and bounded dials, handshakes, headers and idle connections.
func upstreamTransport(cfg Config) (*http.Transport, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", cfg.CAFile)
		}
	}
	return &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  cfg.Timeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        idleTimeout,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    16,
		MaxResponseHeaderBytes: 1 << 20,
	}, nil
}
