package proxy

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Flag defaults.
const (
	DefaultListen        = "127.0.0.1:8080"
	DefaultMetricsListen = ":9090"
	DefaultUpstream      = "https://thingspace.verizon.com"
	DefaultTimeout       = 60 * time.Second
	DefaultMaxReplayBody = 1 << 20
	DefaultShutdown      = 10 * time.Second
)

// Config is the sidecar's configuration, from its flags.
type Config struct {
	// Listen is the proxy port: loopback by default, since whoever reaches it calls ThingSpace
	// with the pod's credential.
	Listen string
	// MetricsListen serves /healthz, /readyz and /metrics: every interface by default, since the
	// kubelet's probes and Prometheus target the pod IP, and nothing there is a credential.
	MetricsListen string
	Upstream      *url.URL
	CAFile        string
	AllowInsecure bool

	// Exactly one credential source: the mounted Secret's directory, or the Secret through the API.
	CredentialsDir  string
	SecretNamespace string
	SecretName      string
	Kubeconfig      string // for --secret outside a pod; empty: in-cluster config

	MaxWait         time.Duration // the transport's bound on waiting for a newer credential; 0: its default
	Timeout         time.Duration
	MaxReplayBody   int64 // the transport's: a longer body streams and is never retried
	ShutdownTimeout time.Duration
}

// ParseFlags parses the command line (without the program name). Usage and errors go to stderr.
func ParseFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("thingspace-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	upstream := fs.String("upstream", DefaultUpstream, "the one base URL requests are forwarded to (ThingSpace, or Verizon Cloud such as https://api.cloudapi.verizon.com); https unless --allow-insecure-upstream")
	secret := fs.String("secret", "", "credential source: the operator's Secret as <namespace>/<name>, read and watched through the API with the pod's ServiceAccount (RBAC get and watch on that name)")
	fs.StringVar(&c.Listen, "listen", DefaultListen, "address of the proxy port; keep it on loopback: whoever reaches it calls the upstream with the pod's credential")
	fs.StringVar(&c.MetricsListen, "metrics-listen", DefaultMetricsListen, "address of /healthz, /readyz and /metrics (the kubelet probes the pod IP, so not loopback when probed)")
	fs.StringVar(&c.CAFile, "ca-file", "", "PEM file of CA certificates trusted for the upstream, in addition to the system roots")
	fs.BoolVar(&c.AllowInsecure, "allow-insecure-upstream", false, "allow a plain http upstream (tests with the simulator only)")
	fs.StringVar(&c.CredentialsDir, "credentials-dir", "", "credential source: the directory the operator's Secret is mounted at (a whole-Secret volume, not subPath)")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig for --secret outside a pod (default: the pod's in-cluster config)")
	fs.DurationVar(&c.MaxWait, "max-wait", 0, "how long a request rejected for its credential waits for a newer one before its one retry (0: the library's default)")
	fs.DurationVar(&c.Timeout, "upstream-timeout", DefaultTimeout, "bound on each request upstream, retry and wait included")
	fs.Int64Var(&c.MaxReplayBody, "max-replay-body-bytes", DefaultMaxReplayBody, "longest request body kept in memory so that a request rejected for its credential can be sent again; a longer one streams through and is not retried")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", DefaultShutdown, "on SIGTERM, how long requests in flight may take to finish")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	u, err := url.Parse(*upstream)
	if err != nil {
		return Config{}, fmt.Errorf("--upstream: %w", err)
	}
	if err := CheckUpstream(u, c.AllowInsecure); err != nil {
		return Config{}, fmt.Errorf("--upstream: %w", err)
	}
	c.Upstream = u

	if *secret != "" {
		ns, name, ok := strings.Cut(*secret, "/")
		if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
			return Config{}, fmt.Errorf("--secret %q: want <namespace>/<name>", *secret)
		}
		c.SecretNamespace, c.SecretName = ns, name
	}
	switch {
	case (c.CredentialsDir == "") == (*secret == ""):
		return Config{}, errors.New("give exactly one of --credentials-dir and --secret")
	case c.Kubeconfig != "" && *secret == "":
		return Config{}, errors.New("--kubeconfig is for --secret only")
	case c.Listen == "" || c.MetricsListen == "":
		return Config{}, errors.New("--listen and --metrics-listen must not be empty")
	case c.Timeout <= 0 || c.ShutdownTimeout <= 0:
		return Config{}, errors.New("--upstream-timeout and --shutdown-timeout must be positive")
	case c.MaxWait < 0 || c.MaxWait >= c.Timeout:
		return Config{}, errors.New("--max-wait must be under --upstream-timeout (and not negative)")
	case c.MaxReplayBody <= 0:
		return Config{}, errors.New("--max-replay-body-bytes must be positive")
	}
	return c, nil
}
