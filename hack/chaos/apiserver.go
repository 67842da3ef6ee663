package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// apiProxy stands between the managers and kube-apiserver, so that API trouble can be injected where
// the managers see it: slow writes (every POST, PUT, PATCH and DELETE held before it is forwarded) and
// outages (every open request, watches included, cut; new ones refused until the outage ends). It
// speaks plain HTTP on loopback to the managers and forwards with the control plane's admin
// credentials. The suite's own reads go to the API server directly.
type apiProxy struct {
	srv  *http.Server
	URL  string
	prox *httputil.ReverseProxy

	mu        sync.Mutex
	slow      time.Duration
	down      bool
	cancels   map[*context.CancelFunc]struct{}
	writes    int
	slowed    int
	refused   int
	cutInWork int
	// onError hears of every request the API server failed (not watches, not the proxy's own cuts).
	onError func(start, end time.Time)
}

func startAPIProxy(cfg *rest.Config) (*apiProxy, error) {
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, err
	}
	tr, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, err
	}
	p := &apiProxy{cancels: map[*context.CancelFunc]struct{}{}}
	p.prox = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
		},
		Transport:     tr,
		FlushInterval: -1, // watches stream
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, _ error) {
			// The API server failed a request (not one the proxy cut): it was down for that request.
			if start, ok := r.Context().Value(startKey{}).(time.Time); ok && r.URL.Query().Get("watch") != "true" && p.onError != nil {
				p.onError(start, time.Now())
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.URL = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *apiProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	p.mu.Lock()
	down, slow := p.down, p.slow
	if write {
		p.writes++
		if slow > 0 {
			p.slowed++
		}
	}
	if down {
		p.refused++
	}
	p.mu.Unlock()
	if down {
		hangUp(w)
		return
	}
	if write && slow > 0 {
		select {
		case <-time.After(slow):
		case <-r.Context().Done():
			return
		}
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	p.mu.Lock()
	if p.down { // went down while this write was held
		p.mu.Unlock()
		hangUp(w)
		return
	}
	p.cancels[&cancel] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.cancels, &cancel)
		p.mu.Unlock()
	}()
	p.prox.ServeHTTP(w, r.WithContext(context.WithValue(ctx, startKey{}, time.Now())))
}

type startKey struct{}

// hangUp resets the connection: what a client of a dead API server sees.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// setDown starts (cutting every open request) or ends an outage.
func (p *apiProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.cancels {
			(*c)()
			p.cutInWork++
		}
	}
}

func (p *apiProxy) isDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

func (p *apiProxy) setSlow(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.slow = d
}

func (p *apiProxy) close() { _ = p.srv.Close() }

// writeKubeconfig writes a kubeconfig for the proxy (no credentials: the proxy adds them).
func (p *apiProxy) writeKubeconfig(dir string) (string, error) {
	path := filepath.Join(dir, "kubeconfig-proxy")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: chaos
  cluster:
    server: %s
contexts:
- name: chaos
  context:
    cluster: chaos
    user: chaos
users:
- name: chaos
  user: {}
current-context: chaos
`, p.URL)
	return path, os.WriteFile(path, []byte(kc), 0o600)
}

// apiServerProc restarts the control plane's kube-apiserver for real: SIGKILL, then the same binary
// with the same arguments and environment (the certificates stay in their directory), waiting for
// /readyz. envtest started the first process; the suite owns every later one and stops it at the end.
type apiServerProc struct {
	path string
	args []string
	env  []string
	pid  int
	cmd  *exec.Cmd
	cfg  *rest.Config
	// logPath gets the output of every API server the suite starts (empty: discarded).
	logPath string
	// readyWithin bounds the wait for a restarted API server to serve (0: 90 s).
	readyWithin time.Duration
}

func findAPIServer(cfg *rest.Config) (*apiServerProc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ..."
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 2 || f[1] != strconv.Itoa(self) {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "kube-apiserver" {
			continue
		}
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		return &apiServerProc{path: args[0], args: args[1:], env: strings.Split(strings.TrimRight(string(env), "\x00"), "\x00"), pid: pid, cfg: cfg}, nil
	}
	return nil, errors.New("no kube-apiserver child process found")
}

// restart kills the API server and starts it again, returning once it serves (or ctx ends).
func (a *apiServerProc) restart(ctx context.Context, downFor time.Duration) error {
	if a.cmd != nil {
		_ = a.cmd.Process.Kill()
		_ = a.cmd.Wait()
	} else {
		_ = syscall.Kill(a.pid, syscall.SIGKILL)
		for i := 0; i < 100 && syscall.Kill(a.pid, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond) // envtest's own goroutine reaps it
		}
	}
	select {
	case <-time.After(downFor):
	case <-ctx.Done():
	}
	cmd := exec.Command(a.path, a.args...)
	cmd.Env = a.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if a.logPath != "" {
		f, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer f.Close() // the child has its own descriptor
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	a.cmd = cmd
	a.pid = cmd.Process.Pid
	return a.waitReady(ctx)
}

func (a *apiServerProc) waitReady(ctx context.Context) error {
	tr, err := rest.TransportFor(a.cfg)
	if err != nil {
		return err
	}
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	within := a.readyWithin
	if within == 0 {
		within = 90 * time.Second
	}
	// envtest's Host ends in "/": appending "/api" asked for "//api", a 404 from a serving API server,
	// and every restart looked down for the whole 90 s.
	probe, err := url.JoinPath(a.cfg.Host, "api")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		// Serving is what the managers need; /readyz may stay false for a while after a restart (a
		// post-start hook), which the suite once took for an API server down for 90 s.
		if resp, err := c.Get(probe); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("kube-apiserver not serving %v after its restart", within)
}

// stop ends an API server the suite started (envtest stops its own).
func (a *apiServerProc) stop() {
	if a.cmd != nil {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = a.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = a.cmd.Process.Kill()
		}
	}
}
