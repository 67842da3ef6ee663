package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ManagerConfig starts a manager process.
type ManagerConfig struct {
	// Binary is the manager executable.
	Binary string
	// Kubeconfig is the kubeconfig file the manager uses (passed as KUBECONFIG).
	Kubeconfig string
	// Args are passed after the harness's own flags (metrics, probe and OAuth2 callback addresses on
	// free ports of 127.0.0.1, --allow-insecure-endpoints, --allowed-endpoint-hosts=127.0.0.1:* for the
	// simulators, --leader-elect=false). Do not override the addresses: the harness reads them. A later
	// flag wins, so Args may pass another --allowed-endpoint-hosts.
	Args []string
	// CallbackAddr is the host:port the manager serves GET /oauth2/callback on
	// (--oauth-callback-bind-address); empty means a free port of 127.0.0.1. Choose it beforehand (see
	// FreeAddr) when something started earlier must know the callback URL, such as a simulator's
	// registered Verizon Cloud app.
	CallbackAddr string
	// LeaderElect turns leader election on, with the Lease in LeaderElectionNamespace. Pass the
	// --leader-elect-* timings in Args (the defaults take a minute to fail over).
	LeaderElect bool
	// LeaderElectionNamespace holds the Lease (--leader-election-namespace); empty means "default".
	// Outside a cluster controller-runtime cannot find one by itself.
	LeaderElectionNamespace string
	// LogPath receives the manager's stdout and stderr, appended across restarts; empty means a new
	// temporary file.
	LogPath string
	// ReadyTimeout bounds the wait for /readyz; zero means 60s.
	ReadyTimeout time.Duration
	// Env is added to the manager's environment (e.g. GOMEMLIMIT=..., as the Deployment sets it).
	Env []string
}

// AllowedHosts is the manager's --allowed-endpoint-hosts under the harness: every port of 127.0.0.1,
// where the simulators listen on ephemeral ports.
const AllowedHosts = "127.0.0.1:*"

// CallbackPath is where the manager serves the OAuth2 callback of CloudAuthorizations.
const CallbackPath = "/oauth2/callback"

// Manager is a running manager process.
type Manager struct {
	// LogPath holds everything the manager printed, over all its runs.
	LogPath string
	// MetricsURL is the Prometheus endpoint, e.g. http://127.0.0.1:41234/metrics.
	MetricsURL string
	// ProbeURL is the base of the health probes, e.g. http://127.0.0.1:41235 (+ /readyz, /healthz).
	ProbeURL string
	// CallbackURL is the manager's OAuth2 callback, e.g. http://127.0.0.1:41236/oauth2/callback: the
	// callbackURL of a CloudAuthorization and the Callback URL a simulator's Cloud app is registered with.
	CallbackURL string

	cfg  ManagerConfig
	args []string
	http *http.Client

	mu      sync.Mutex
	proc    *process
	lastHWM int64 // VmHWM sampled just before the last stop
}

// Start runs the manager and waits until it is ready.
func (c ManagerConfig) Start(ctx context.Context) (*Manager, error) {
	if c.Kubeconfig == "" {
		return nil, errors.New("manager: no kubeconfig")
	}
	metricsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	probePort, err := FreePort()
	if err != nil {
		return nil, err
	}
	callbackAddr := c.CallbackAddr
	if callbackAddr == "" {
		if callbackAddr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	log, err := openLog(c.LogPath, "thingspace-manager-*.log")
	if err != nil {
		return nil, err
	}
	log.Close()
	metricsAddr := "127.0.0.1:" + strconv.Itoa(metricsPort)
	probeAddr := "127.0.0.1:" + strconv.Itoa(probePort)
	m := &Manager{
		LogPath:     log.Name(),
		MetricsURL:  "http://" + metricsAddr + "/metrics",
		ProbeURL:    "http://" + probeAddr,
		CallbackURL: "http://" + callbackAddr + CallbackPath,
		cfg:         c,
		args: append([]string{
			"--metrics-bind-address", metricsAddr,
			"--metrics-secure=false", // plain HTTP on loopback: the tests scrape without a token
			"--health-probe-bind-address", probeAddr,
			"--oauth-callback-bind-address", callbackAddr,
			"--allow-insecure-endpoints",
			"--allowed-endpoint-hosts=" + AllowedHosts,
			"--leader-elect=" + strconv.FormatBool(c.LeaderElect),
		}, c.Args...),
		http: &http.Client{Timeout: 10 * time.Second},
	}
	if c.LeaderElect {
		ns := c.LeaderElectionNamespace
		if ns == "" {
			ns = "default"
		}
		m.args = append(m.args, "--leader-election-namespace", ns)
	}
	if err := m.start(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// Config is the configuration the manager was started with (its addresses chosen, its log file
// named): the starting point of a second manager on the same binary and kubeconfig.
func (m *Manager) Config() ManagerConfig {
	c := m.cfg
	c.Args = slices.Clone(c.Args)
	c.CallbackAddr = strings.TrimSuffix(strings.TrimPrefix(m.CallbackURL, "http://"), CallbackPath)
	c.LogPath = m.LogPath
	return c
}

func (m *Manager) start(ctx context.Context) error {
	log, err := openLog(m.LogPath, "")
	if err != nil {
		return err
	}
	p, err := startProcess("manager", m.cfg.Binary, m.args, append([]string{"KUBECONFIG=" + m.cfg.Kubeconfig}, m.cfg.Env...), log, nil)
	log.Close() // the child has its own descriptor
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.proc = p
	m.mu.Unlock()

	timeout := m.cfg.ReadyTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	err = WaitFor(ctx, timeout, 100*time.Millisecond, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("exited (%v)", p.err)
		}
		resp, err := m.http.Get(m.ProbeURL + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		_ = m.Stop()
		return fmt.Errorf("manager not ready: %w; log %s:\n%s", err, m.LogPath, readTail(m.LogPath, 8192))
	}
	return nil
}

// Stop ends the manager with SIGTERM (SIGKILL after a grace period) and waits for it. It returns an
// error when the manager exited unsuccessfully.
func (m *Manager) Stop() error {
	p := m.current()
	if p == nil {
		return nil
	}
	return p.stop()
}

// Kill ends the manager with SIGKILL at once, as a node failure or the OOM killer would: nothing it had
// in flight completes. It waits for the process to be gone; start it again with Start.
func (m *Manager) Kill() error {
	p := m.current()
	if p == nil {
		return nil
	}
	return p.kill()
}

// current returns the manager process, after sampling its peak RSS for PeakRSS.
func (m *Manager) current() *process {
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	if p == nil {
		return nil
	}
	if hwm, err := procStatusBytes(p.pid(), "VmHWM"); err == nil {
		m.mu.Lock()
		m.lastHWM = hwm
		m.mu.Unlock()
	}
	return p
}

// Start starts a stopped manager again with the same flags, ports and log file, and waits until it is
// ready, so that something can happen in between (a stats reset, say).
func (m *Manager) Start(ctx context.Context) error {
	if m.Running() {
		return errors.New("manager: already running")
	}
	return m.start(ctx)
}

// Running reports whether the manager process is alive.
func (m *Manager) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc != nil && !m.proc.exited()
}

// Logs returns everything the manager printed, over all its runs.
func (m *Manager) Logs() string {
	b, _ := os.ReadFile(m.LogPath)
	return string(b)
}

// Metrics returns the Prometheus text exposition from the metrics endpoint.
func (m *Manager) Metrics() (string, error) {
	resp, err := m.http.Get(m.MetricsURL)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: status %d", m.MetricsURL, resp.StatusCode)
	}
	return string(b), nil
}

// PeakRSS is the peak resident set size (VmHWM) of the current manager process in bytes; after Stop, the
// value sampled just before it. 0 when unknown.
func (m *Manager) PeakRSS() int64 {
	m.mu.Lock()
	p, last := m.proc, m.lastHWM
	m.mu.Unlock()
	if p != nil && !p.exited() {
		if v, err := procStatusBytes(p.pid(), "VmHWM"); err == nil {
			return v
		}
	}
	return last
}

// FileRSS is the file-backed part of the manager's current RSS (RssFile: its executable's pages, which
// stay about constant whatever the manager holds) in bytes; 0 when it is not running. VmHWM counts them.
func (m *Manager) FileRSS() int64 {
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	if p == nil || p.exited() {
		return 0
	}
	v, _ := procStatusBytes(p.pid(), "RssFile")
	return v
}

// RSS is the current resident set size (VmRSS) of the manager in bytes; 0 when it is not running.
func (m *Manager) RSS() int64 {
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	if p == nil || p.exited() {
		return 0
	}
	v, _ := procStatusBytes(p.pid(), "VmRSS")
	return v
}
