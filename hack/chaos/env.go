package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/credops/thingspace-operator/test/harness"
)

// env is one run's processes: the control plane (and the suite's own kube-apiserver after a restart),
// the proxy the managers reach it through, the simulator and the manager replicas.
type env struct {
	opts  Options
	dir   string
	cp    *harness.ControlPlane
	api   *apiServerProc
	proxy *apiProxy
	sim   *harness.Sim
	mgrs  []*replica
	log   *eventLog

	chaosMu sync.Mutex
	chaos   harness.Chaos
}

// replica is one manager process, restarted by the schedule (or by the watchdog when it exits by
// itself, as a leader that lost its lease does).
type replica struct {
	name string
	mgr  *harness.Manager
	mu   sync.Mutex
	// starts are the moments the process became ready, kills the moments it was killed or stopped (or
	// found exited), sigkills those of the SIGKILLs alone: only a SIGKILL takes an answer in flight away
	// from a manager without its say (a SIGTERM lets it finish, a lost lease is its own decision).
	starts, kills, sigkills []time.Time
	down                    bool // stopped by the schedule, to be started again by it
}

const (
	tokenLifetime   = 60 * time.Second
	m2mIdle         = 30 * time.Second
	cloudLifetime   = 60 * time.Second
	upstreamTimeout = 4 * time.Second
	leaseDuration   = 6 * time.Second
)

func startEnv(ctx context.Context, o Options) (*env, error) {
	e := &env{opts: o, log: &eventLog{}}
	var err error
	if e.dir, err = os.MkdirTemp("", "thingspace-chaos-"); err != nil {
		return nil, err
	}
	var mgrBin, simBin string
	e.cp, mgrBin, simBin, err = harness.StartWithBinaries(ctx, filepath.Join(e.dir, "bin"))
	if err != nil {
		return nil, err
	}
	if e.api, err = findAPIServer(e.cp.Config); err != nil {
		e.stop()
		return nil, err
	}
	e.api.logPath = filepath.Join(e.dir, "apiserver.log")
	if e.proxy, err = startAPIProxy(e.cp.Config); err != nil {
		e.stop()
		return nil, err
	}
	e.proxy.onError = func(start, end time.Time) {
		if e.proxy.isDown() {
			return
		}
		e.log.add("api", start, end)
		e.log.count("API request failed by the API server")
	}
	kubeconfig, err := e.proxy.writeKubeconfig(e.dir)
	if err != nil {
		e.stop()
		return nil, err
	}
	callback, err := harness.FreeAddr()
	if err != nil {
		e.stop()
		return nil, err
	}
	callbackURL := "http://" + callback + harness.CallbackPath
	simCfg := harness.SimConfig{
		Binary:  simBin,
		LogPath: filepath.Join(e.dir, "sim.log"),
		Ledger:  true,
		Args: []string{
			"--token-lifetime", tokenLifetime.String(),
			"--m2m-idle-timeout", m2mIdle.String(),
		},
		CloudApps:                map[string]harness.CloudApp{cloudClient: {Secret: cloudSecret, CallbackURL: callbackURL}},
		CloudAccessTokenLifetime: cloudLifetime,
	}
	for _, a := range simKeys(o.Sets) {
		simCfg.Args = append(simCfg.Args, "--app", a+":"+appSecret(a))
	}
	for _, u := range simUsers(o.Sets) {
		simCfg.Args = append(simCfg.Args, "--m2m-user", u+":"+initialPassword(u))
	}
	if e.sim, err = simCfg.Start(ctx); err != nil {
		e.stop()
		return nil, err
	}
	base := harness.ManagerConfig{
		Binary:       mgrBin,
		Kubeconfig:   kubeconfig,
		LeaderElect:  true,
		CallbackAddr: callback,
		Args: []string{
			"--upstream-timeout=" + upstreamTimeout.String(),
			"--leader-elect-lease-duration=" + leaseDuration.String(),
			"--leader-elect-renew-deadline=4s", "--leader-elect-retry-period=1s",
		},
		ReadyTimeout: 90 * time.Second,
	}
	for i := range o.Replicas {
		cfg := base
		cfg.LogPath = filepath.Join(e.dir, fmt.Sprintf("manager-%d.log", i))
		if i > 0 {
			cfg.CallbackAddr = "" // its own; the Cloud app is registered with the first one's
		}
		m, err := cfg.Start(ctx)
		if err != nil {
			e.stop()
			return nil, fmt.Errorf("manager %d: %w", i, err)
		}
		e.mgrs = append(e.mgrs, &replica{name: fmt.Sprintf("manager-%d", i), mgr: m, starts: []time.Time{time.Now()}})
	}
	return e, nil
}

// stop ends everything, in reverse order. The run's directory stays when keep is set.
func (e *env) stop() {
	for _, r := range e.mgrs {
		_ = r.mgr.Kill()
	}
	if e.sim != nil {
		_ = e.sim.Stop()
	}
	if e.proxy != nil {
		e.proxy.close()
	}
	if e.api != nil {
		e.api.stop()
	}
	if e.cp != nil {
		_ = e.cp.Stop()
	}
}

// eventLog records what the schedule did, for the table and the blocked windows.
type eventLog struct {
	mu sync.Mutex
	// windows during which an upstream family (or "api", the API server; "all" for every upstream) could
	// not have served a refresh: hard upstream outages, Bearer-reject windows, API outages and restarts.
	blocked  []window
	counts   map[string]int
	timeline []string
	// apiBack is, per kube-apiserver restart, how long the new process took to serve.
	apiBack []time.Duration
}

type window struct {
	what       string // "ts", "m2m", "cloud", "upstream" (all three), "api", "leader"
	start, end time.Time
}

func (l *eventLog) add(what string, start, end time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.blocked = append(l.blocked, window{what, start, end})
}

func (l *eventLog) count(what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	l.counts[what]++
	l.timeline = append(l.timeline, time.Now().UTC().Format("15:04:05.000")+" "+what)
}

// note records something for the timeline only.
func (l *eventLog) note(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timeline = append(l.timeline, time.Now().UTC().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
}

var (
	harnessFaultsNone = harness.Faults{}
	harnessChaosNone  = harness.Chaos{}
)
