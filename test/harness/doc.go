// Package harness starts and drives the real processes behind the end-to-end tests, the benchmark
// (make bench) and the demo (make demo): a Kubernetes control plane (envtest's kube-apiserver and etcd),
// the thingspace-sim binary and the manager binary. Nothing here fakes the operator: every check goes
// through the API server, the simulator's admin endpoints or the manager's HTTP endpoints.
//
// A typical run:
//
//	cp, _ := harness.StartControlPlane(ctx)        // KUBEBUILDER_ASSETS or <repo>/bin/k8s
//	defer cp.Stop()
//	mgrBin, simBin, _ := harness.BuildBinaries(ctx, dir)
//	sim, _ := harness.SimConfig{Binary: simBin, Args: []string{"--app", "key:secret", "--token-lifetime", "4s"}}.Start(ctx)
//	defer sim.Stop()
//	mgr, _ := harness.ManagerConfig{Binary: mgrBin, Kubeconfig: cp.KubeconfigPath}.Start(ctx)
//	defer mgr.Stop()
//	_ = harness.CreateCredentials(ctx, cp.Client, "ns", "creds", "key", "secret")
//	_ = cp.Client.Create(ctx, harness.NewApp("ns", "app", sim.URL, "creds", "token"))
//	tok, exp, _ := harness.ReadToken(ctx, cp.Client, "ns", "token")
//
// and for a Connectivity Management (UWS) session, with a simulator started with
// "--m2m-user", "uws:Passw0rd!" (and a short "--m2m-idle-timeout"):
//
//	_ = harness.CreateUWSCredentials(ctx, cp.Client, "ns", "uws-creds", "uws", "Passw0rd!")
//	_ = cp.Client.Create(ctx, harness.NewM2MSession("ns", "s", "app", "uws-creds", "session", time.Second, "0000123456-00001"))
//	ss, _ := harness.ReadSession(ctx, cp.Client, "ns", "session")   // session_token, access_token, expiry
//	info, _ := sim.M2MUser("uws")                                   // locked, failures, logins, password
//	n, _ := sim.Count(harness.RouteM2MAccount, 200)                 // keep-alives
//
// Processes are stopped with SIGTERM (SIGKILL after a grace period) and are killed by the kernel if the
// process that started them dies, so an interrupted test run leaves nothing behind. Their output goes to
// log files (LogPath), which the caller keeps or removes.
package harness
