package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// M2MSessions (phase 2b): one UWS user per session, each session kept alive with an account read.
const (
	benchAccount = "0000123456-00001"
	// targetSessionsReady is the target for all sessions to be Ready, from the first create.
	targetSessionsReady = 60 * time.Second
	// keepAliveTolerance is how far the keep-alives in the window may be from the planned number.
	keepAliveTolerance = 0.05
)

// uwsUsers makes one UWS user per session, writes them as a --m2m-users-file and returns the names and
// passwords (which meet the UWS rules); extra are more "name:password" lines for the file.
func uwsUsers(workDir string, n int, extra ...string) (names, passwords []string, path string, err error) {
	names, passwords = make([]string, n), make([]string, n)
	var b strings.Builder
	for _, line := range extra {
		b.WriteString(line + "\n")
	}
	for i := range n {
		names[i] = fmt.Sprintf("bench-uws-%04d", i)
		passwords[i] = "Bw!" + randHex(6) + "7q"
		fmt.Fprintf(&b, "%s:%s\n", names[i], passwords[i])
	}
	path = filepath.Join(workDir, "m2m-users.txt")
	return names, passwords, path, os.WriteFile(path, []byte(b.String()), 0o600)
}

func sessionName(i int) string { return fmt.Sprintf("m2m-%04d", i) }

// phase2b creates --sessions UWS credentials Secrets and M2MSessions (session i uses app i), waits
// until all are Ready, counts the logins, then counts the keep-alives over --session-window.
func phase2b(ctx context.Context, c client.WithWatch, a *apiCounter, sim *harness.Sim, mgr *harness.Manager, o options,
	users, passwords []string, res *Results) error {
	logf("phase 2b: creating %d UWS credentials Secrets and M2MSessions (keep-alive every %s, idle timeout %s) with %d creators",
		o.sessions, o.keepAlive, o.idleTimeout, o.creators)
	before, err := sim.Stats()
	if err != nil {
		return err
	}
	if err := apiPhase(ctx, a, res, "sessions: create → Ready (the first login each)", budgetSessionCreate, "m2msessions", o.sessions, func() error {
		return createSessions(ctx, c, mgr, o, users, passwords, res)
	}); err != nil {
		return err
	}
	atReady, err := sim.Stats()
	if err != nil {
		return err
	}
	logf("phase 2b: %d logins so far; counting keep-alives for %s",
		sum(atReady[harness.RouteM2MLogin])-sum(before[harness.RouteM2MLogin]), o.sessionWindow)
	after := atReady
	if o.sessionWindow > 0 {
		if err := apiPhase(ctx, a, res, fmt.Sprintf("sessions: keep-alive window (%s), per keep-alive", o.sessionWindow), budgetKeepAlive, "m2msessions", 0, func() error {
			after, res.KeepAliveWindowSeconds, err = over(ctx, o.sessionWindow, sim.Stats)
			return err
		}); err != nil {
			return err
		}
	}
	res.KeepAlives = sum(after[harness.RouteM2MAccount]) - sum(atReady[harness.RouteM2MAccount])
	res.KeepAlivesOK = after[harness.RouteM2MAccount]["200"] - atReady[harness.RouteM2MAccount]["200"]
	if o.sessionWindow > 0 {
		lastAPI(res).Objects = res.KeepAlives
	}
	res.KeepAlivesPlanned = int(float64(o.sessions) * o.sessionWindow.Seconds() / o.keepAlive.Seconds())
	res.WindowLogins = sum(after[harness.RouteM2MLogin]) - sum(atReady[harness.RouteM2MLogin])
	// Every login from the first create to the end of the window, by status.
	res.Logins = map[string]int{}
	for status, n := range after[harness.RouteM2MLogin] {
		if d := n - before[harness.RouteM2MLogin][status]; d > 0 {
			res.Logins[status] = d
		}
	}
	if n, err := sim.ActiveM2MSessions(); err == nil {
		res.LiveSessionsAfterWindow = n
	}
	res.SessionsLogErrors = strings.Count(mgr.Logs(), `"level":"error"`) - res.ManagerLogErrors
	res.SessionsPeakRSSBytes, res.SessionsRSSAfterBytes, res.SessionsHeapAfterBytes = readMem(mgr)
	logf("phase 2b: %d keep-alives in %s (%d planned), %d logins meanwhile, %d live sessions upstream; manager peak RSS %s",
		res.KeepAlives, secs(res.KeepAliveWindowSeconds), res.KeepAlivesPlanned, res.WindowLogins, res.LiveSessionsAfterWindow,
		mib(res.SessionsPeakRSSBytes))
	return nil
}

// createSessions creates the credentials Secrets and M2MSessions and waits until all are Ready.
func createSessions(ctx context.Context, c client.WithWatch, mgr *harness.Manager, o options, users, passwords []string, res *Results) error {
	tr, err := track(ctx, c, &v1alpha1.M2MSessionList{}, func(o runtime.Object) (bool, string) {
		return harness.SessionReady(o.(*v1alpha1.M2MSession))
	})
	if err != nil {
		return err
	}
	out, err := runRollout(ctx, mgr, o, rollout{
		phase: "phase 2b", what: "M2MSessions", n: o.sessions, track: tr, name: sessionName,
		create: func(i int) error {
			creds := fmt.Sprintf("uws-%04d", i)
			if err := createSecret(ctx, c, creds, map[string]string{v1alpha1.CredentialsKeyUsername: users[i], v1alpha1.CredentialsKeyPassword: passwords[i]}); err != nil {
				return err
			}
			return create(ctx, c, harness.NewM2MSession(nsApps, sessionName(i), fmt.Sprintf("app-%04d", i%o.apps), creds, sessionName(i)+"-session",
				o.keepAlive, benchAccount))
		},
	})
	if err != nil {
		return err
	}
	res.SessionCreateSeconds, res.SessionsAllReady, res.SessionsReadySeconds, res.SessionsReadyCount = out.createSeconds, out.allReady, out.readySeconds, out.ready
	res.addLatency(out.latency)
	if !out.allReady {
		res.SessionsNotReady = out.notReady
	}

	// Let stragglers land before counting.
	return sleep(ctx, 3*time.Second)
}
