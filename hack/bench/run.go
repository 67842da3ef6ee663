package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/test/harness"
)

// run sets everything up, runs the phases and tears everything down.
func run(ctx context.Context, o options) (_ *Results, err error) {
	res := &Results{Apps: o.apps, UnrelatedSecrets: o.unrelated, LabelledSecrets: o.labelled, RestartWindowSeconds: o.restartWindow.Seconds(),
		Sessions: o.sessions, KeepAliveSeconds: o.keepAlive.Seconds(), Clouds: o.clouds, CloudLifetimeSeconds: o.cloudLifetime.Seconds()}
	// The work directory (binaries, logs, a kubeconfig) is under bin/, not the shared temporary
	// directory, where a cleaner could pull it from under a running manager.
	root, err := harness.RepoRoot()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, "bin", "bench"), 0o755); err != nil {
		return nil, err
	}
	workDir, err := os.MkdirTemp(filepath.Join(root, "bin", "bench"), "run-")
	if err != nil {
		return nil, err
	}
	// Registered first, so it runs after every process has been stopped.
	defer func() {
		if err != nil || o.keep || !res.Pass {
			res.WorkDir = workDir
			logf("manager and simulator logs kept in %s", workDir)
			return
		}
		_ = os.RemoveAll(workDir)
		_ = os.Remove(filepath.Dir(workDir)) // bin/bench, when no other run is kept there
	}()

	logf("starting kube-apiserver and etcd; building the manager and the simulator")
	cp, mgrBin, simBin, err := harness.StartWithBinaries(ctx, filepath.Join(workDir, "bin"))
	if err != nil {
		return nil, err
	}
	defer func() {
		logf("stopping the control plane")
		if err := cp.Stop(); err != nil {
			logf("stopping the control plane: %v", err)
		}
	}()
	// Every request of the benchmark goes through c, which counts them: the API server's counts minus
	// these are the operator's.
	api, c, err := newAPICounter(cp.Config, client.Options{Scheme: cp.Scheme})
	if err != nil {
		return nil, err
	}

	// One app key per ThingSpaceApp, in a file: a thousand --app flags would put every secret in ps.
	keys := make([]string, o.apps)
	secrets := make([]string, o.apps)
	var appsFile strings.Builder
	for i := range keys {
		keys[i] = fmt.Sprintf("bench-key-%04d", i)
		secrets[i] = "bench-" + randHex(12)
		fmt.Fprintf(&appsFile, "%s:%s\n", keys[i], secrets[i])
	}
	// The ClusterThingSpaceApp's key and the ClusterM2MSession's UWS user (phase 2d).
	clusterSecret, clusterPassword := "bench-"+randHex(12), "Bw!"+randHex(6)+"7q"
	fmt.Fprintf(&appsFile, "%s:%s\n", clusterKey, clusterSecret)
	appsPath := filepath.Join(workDir, "apps.txt")
	if err := os.WriteFile(appsPath, []byte(appsFile.String()), 0o600); err != nil {
		return nil, err
	}
	// One UWS user per M2MSession, in a file too.
	users, passwords, usersPath, err := uwsUsers(workDir, o.sessions, clusterUser+":"+clusterPassword)
	if err != nil {
		return nil, err
	}
	sim, err := harness.SimConfig{
		Binary: simBin,
		Args: []string{"--apps-file", appsPath, "--token-lifetime", "1h",
			"--m2m-users-file", usersPath, "--m2m-idle-timeout", o.idleTimeout.String()},
		CloudAccessTokenLifetime: o.cloudLifetime,
		LogPath:                  filepath.Join(workDir, "sim.log"),
	}.Start(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sim.Stop() }()
	logf("simulator on %s with %d app keys, 1h tokens, %d UWS users, sessions idle out after %s, Verizon Cloud access tokens live %s",
		sim.URL, o.apps, o.sessions, o.idleTimeout, o.cloudLifetime)

	// The manager is restarted twice: it reads a copy of the kubeconfig that lives as long as the run.
	kubeconfig := filepath.Join(workDir, "kubeconfig")
	if err := copyFile(cp.KubeconfigPath, kubeconfig); err != nil {
		return nil, err
	}
	// The cluster resource namespace is also the holder registry's (a Lease per app key): without it
	// every reconcile's registration fails, a refused write and a log line per app.
	if err := createNamespace(ctx, c, nsPlatform); err != nil {
		return nil, err
	}
	mgr, err := startManager(ctx, root, workDir, kubeconfig, mgrBin, &o, res)
	if err != nil {
		return nil, err
	}
	defer func() {
		// After Ctrl-C in a terminal the manager got the SIGINT too, and SIGTERM on top of it makes it
		// exit 1: nothing to report then.
		if err := mgr.Stop(); err != nil && ctx.Err() == nil {
			logf("stopping the manager: %v", err)
		}
	}()

	// ---- Phase 1: unrelated Secrets -------------------------------------------------------------
	if o.unrelated > 0 {
		if err := phase1(ctx, c, mgr, o, res); err != nil {
			return nil, err
		}
	}

	if err := phases(ctx, c, api, sim, mgr, o, keys, secrets, users, passwords, clusterSecret, clusterPassword, res); err != nil {
		return nil, err
	}
	res.evaluate()
	return res, nil
}

// phases runs phases 2 to 3 on the running manager.
func phases(ctx context.Context, c client.WithWatch, api *apiCounter, sim *harness.Sim, mgr *harness.Manager, o options,
	keys, secrets, users, passwords []string, clusterSecret, clusterPassword string, res *Results) error {
	// ---- Phase 2: N apps -----------------------------------------------------------------------
	if err := sim.ResetStats(); err != nil {
		return err
	}
	if err := apiPhase(ctx, api, res, "apps: create → Ready (the first token each)", budgetRotation, "thingspaceapps", o.apps, func() error {
		return phase2(ctx, c, sim, mgr, o, keys, secrets, res)
	}); err != nil {
		return err
	}
	o.prof.heap(ctx, "apps")
	if err := probeApps(ctx, c, api, sim, min(o.probe, o.apps), res); err != nil {
		return err
	}

	// ---- Phase 2d: the cluster kinds' consumers ---------------------------------------------------
	// Before the sessions and the clouds, whose keep-alives and refreshes would write the same
	// resources (m2msessions/status, Secrets) while the consumers' writes are counted.
	if o.consumers > 0 {
		if err := phase2d(ctx, c, api, sim, mgr, o, clusterSecret, clusterPassword, res); err != nil {
			return err
		}
		o.prof.heap(ctx, "consumers")
	}

	// ---- Phase 2b: M2M sessions ------------------------------------------------------------------
	if o.sessions > 0 {
		if err := phase2b(ctx, c, api, sim, mgr, o, users, passwords, res); err != nil {
			return err
		}
		if err := probeSessions(ctx, c, api, sim, o, res); err != nil {
			return err
		}
		o.prof.heap(ctx, "sessions")
	}

	// ---- Phase 2c: CloudAuthorizations ----------------------------------------------------------
	if o.clouds > 0 {
		if err := phase2c(ctx, c, api, sim, mgr, o, res); err != nil {
			return err
		}
		if err := probeClouds(ctx, c, api, sim, o, res); err != nil {
			return err
		}
		o.prof.heap(ctx, "clouds")
	}

	// ---- Phase 3: restart ----------------------------------------------------------------------
	// With valid tokens a restart writes nothing; keep-alives and Cloud refreshes falling due do.
	restartBudget := budgetNone
	if o.sessions > 0 || o.clouds > 0 {
		restartBudget = ""
	}
	if err := apiPhase(ctx, api, res, "restart (start → ready + the window)", restartBudget, "thingspaceapps", 0, func() error {
		return phase3(ctx, c, sim, mgr, o, res)
	}); err != nil {
		return err
	}
	o.prof.heap(ctx, "restart")
	return nil
}

// startManager starts the manager as deployed: with the Deployment's GOMEMLIMIT and GOGC (so its memory
// is the shipped configuration's), --manager-args, and with --pprof a pprof endpoint the profiler reads.
func startManager(ctx context.Context, root, workDir, kubeconfig, mgrBin string, o *options, res *Results) (*harness.Manager, error) {
	goMemLimit, err := shippedGoMemLimit(root)
	if err != nil {
		return nil, err
	}
	res.GoMemLimit = goMemLimit
	env := []string{"GOMEMLIMIT=" + goMemLimit}
	if res.GoGC, err = shippedEnv(root, "GOGC"); err != nil {
		return nil, err
	} else if res.GoGC != "" {
		env = append(env, "GOGC="+res.GoGC)
	}
	// Outside a cluster the cluster kinds need their Secrets' namespace named.
	mgrArgs := append([]string{"--cluster-resource-namespace=" + nsPlatform}, strings.Fields(o.managerArgs)...)
	res.ManagerArgs = strings.Fields(o.managerArgs)
	if o.pprof {
		addr, err := harness.FreeAddr()
		if err != nil {
			return nil, err
		}
		o.prof, o.keep = &profiler{addr: addr, dir: workDir}, true
		mgrArgs = append(mgrArgs, "--pprof-bind-address="+addr)
	}
	return harness.ManagerConfig{
		Binary:     mgrBin,
		Kubeconfig: kubeconfig,
		LogPath:    filepath.Join(workDir, "manager.log"),
		Env:        env,
		Args:       mgrArgs,
	}.Start(ctx)
}
