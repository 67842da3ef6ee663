// Command thingspace-sim serves the ThingSpace simulator
// (internal/simulator) over HTTP for demos, benchmarks and out-of-process
// tests. Once the port is bound it prints exactly one line to stdout,
// "listening on http://<addr>", so callers using --listen 127.0.0.1:0 can
// learn the port; everything else goes to stderr.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/credops/thingspace-operator/internal/simulator"
)

// shutdownGrace bounds how long in-flight requests (possibly held by injected
// latency) may delay exit.
const shutdownGrace = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Restore default signal handling once the first signal arrives, so a
	// second Ctrl-C kills a shutdown that hangs.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "thingspace-sim:", err)
		os.Exit(1)
	}
}

// run is main without process globals, so it can be tested.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("thingspace-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apps := &appsFlag{m: map[string]string{}}
	users := &appsFlag{m: map[string]string{}, noun: "user", format: "name:password"}
	listen := fs.String("listen", "127.0.0.1:8088", "address to listen on; port 0 picks a free port")
	fs.Var(apps, "app", "app credentials as key:secret (repeatable); visible in ps, prefer --apps-file")
	appsFile := fs.String("apps-file", "", "file of key:secret lines (blank lines and # comments ignored)")
	lifetime := fs.Duration("token-lifetime", simulator.DefaultTokenLifetime, "access token lifetime")
	grace := fs.Duration("token-expiry-grace", 0, "keep a ThingSpace token live this long past its lifetime, answering token requests with it and expires_in 0 (a gateway lagging the client)")
	fs.Var(users, "m2m-user", "M2M (UWS) user as name:password (repeatable); visible in ps, prefer --m2m-users-file")
	usersFile := fs.String("m2m-users-file", "", "file of M2M name:password lines (blank lines and # comments ignored)")
	idle := fs.Duration("m2m-idle-timeout", simulator.DefaultM2MIdleTimeout, "M2M session idle timeout")
	lockedCode := fs.String("m2m-locked-code", simulator.DefaultM2MLockedCode, "errorCode answered to a locked M2M user's login (the real one is unknown)")
	resetEnds := fs.Bool("m2m-reset-ends-sessions", false, "a password reset ends every session of the user")
	tied := fs.Bool("m2m-session-tied-to-token", false, "an M2M session works only with the access token that logged in, and ends when that token expires or is revoked (PUT /admin/m2m/session-tied switches it live)")
	cloudApps := &cloudAppsFlag{m: map[string]simulator.CloudApp{}}
	fs.Var(cloudApps, "cloud-app", "Verizon Cloud client as client-id:secret:callback-url (repeatable; split at the first two colons, so the URL keeps its own); visible in ps")
	cloudAccess := fs.Duration("cloud-access-token-lifetime", simulator.DefaultCloudAccessTokenLifetime, "Verizon Cloud access token lifetime")
	cloudRefresh := fs.Duration("cloud-refresh-token-lifetime", simulator.DefaultCloudRefreshTokenLifetime, "Verizon Cloud refresh token lifetime, from each refresh token's issue")
	cloudCode := fs.Duration("cloud-code-lifetime", simulator.DefaultCloudCodeLifetime, "Verizon Cloud authorization code lifetime")
	cloudDeny := fs.Bool("cloud-deny-consent", false, "Verizon Cloud authorize refuses consent (redirects with error=access_denied)")
	cloudDelay := fs.Duration("cloud-token-delay", 0, "hold every Verizon Cloud token response this long after processing it (a refresh has already rotated)")
	ledger := fs.Bool("ledger", false, "record every call, issued credential and applied reset for GET /admin/ledger (the chaos suite)")
	var faults simulator.Faults
	fs.Float64Var(&faults.Rate, "fault-rate", 0, "share (0..1) of /api and /cloud requests answered with a fault")
	fs.IntVar(&faults.Status, "fault-status", 503, "status of injected faults: 503 or 429")
	fs.DurationVar(&faults.RetryAfter, "fault-retry-after", 0, "Retry-After sent with injected faults (rounded up to seconds; 0 = none)")
	fs.DurationVar(&faults.Latency, "latency", 0, "delay added to every /api and /cloud request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := errors.Join(apps.errs...); err != nil {
		return fmt.Errorf("--app: %w", err)
	}
	if err := errors.Join(users.errs...); err != nil {
		return fmt.Errorf("--m2m-user: %w", err)
	}
	if err := errors.Join(cloudApps.errs...); err != nil {
		return fmt.Errorf("--cloud-app: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *appsFile != "" {
		if err := apps.load(*appsFile); err != nil {
			return err
		}
	}
	if *usersFile != "" {
		if err := users.load(*usersFile); err != nil {
			return err
		}
	}
	if err := faults.Validate(); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	if *lifetime <= 0 {
		return fmt.Errorf("--token-lifetime must be positive, got %v", *lifetime)
	}
	if *grace < 0 {
		return fmt.Errorf("--token-expiry-grace must not be negative, got %v", *grace)
	}

	if *idle <= 0 {
		return fmt.Errorf("--m2m-idle-timeout must be positive, got %v", *idle)
	}
	if strings.TrimSpace(*lockedCode) == "" {
		return errors.New("--m2m-locked-code must not be empty")
	}
	for name, d := range map[string]time.Duration{
		"cloud-access-token-lifetime":  *cloudAccess,
		"cloud-refresh-token-lifetime": *cloudRefresh,
		"cloud-code-lifetime":          *cloudCode,
	} {
		if d <= 0 {
			return fmt.Errorf("--%s must be positive, got %v", name, d)
		}
	}
	if *cloudDelay < 0 {
		return fmt.Errorf("--cloud-token-delay must not be negative, got %v", *cloudDelay)
	}

	sim := simulator.New(simulator.Config{
		Apps:              apps.m,
		TokenLifetime:     *lifetime,
		ExpiryGrace:       *grace,
		Faults:            faults,
		M2MUsers:          users.m,
		M2MIdleTimeout:    *idle,
		M2MLockedCode:     *lockedCode,
		ResetEndsSessions: *resetEnds,

		M2MSessionTiedToBearer: *tied,

		CloudApps:                 cloudApps.m,
		CloudAccessTokenLifetime:  *cloudAccess,
		CloudRefreshTokenLifetime: *cloudRefresh,
		CloudCodeLifetime:         *cloudCode,
		CloudDenyConsent:          *cloudDeny,
		CloudTokenResponseDelay:   *cloudDelay,
		Ledger:                    *ledger,
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	// Only key names are printed: secrets never reach a log.
	if len(apps.m) == 0 {
		fmt.Fprintln(stderr, "thingspace-sim: no apps configured; add one with PUT /admin/apps/{key}")
	} else {
		fmt.Fprintf(stderr, "thingspace-sim: apps %s; token lifetime %v; faults %+v\n",
			strings.Join(apps.keys(), ", "), *lifetime, sim.Faults())
	}
	// Usernames only, never passwords.
	fmt.Fprintf(stderr, "thingspace-sim: m2m users [%s]; idle timeout %v; reset ends sessions %v; session tied to token %v\n",
		strings.Join(users.keys(), ", "), *idle, *resetEnds, *tied)
	// Client ids and callback URLs, never secrets.
	fmt.Fprintf(stderr, "thingspace-sim: cloud apps [%s]; lifetimes access %v, refresh %v, code %v; deny consent %v; token delay %v\n",
		cloudApps, *cloudAccess, *cloudRefresh, *cloudCode, *cloudDeny, *cloudDelay)
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())

	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(stderr, "thingspace-sim: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// appsFlag collects --app key:secret values, and with noun "user" and format
// "name:password" --m2m-user values.
type appsFlag struct {
	m map[string]string
	// noun and format name the values in errors; "" means "app" and
	// "key:secret".
	noun, format string
	// errs holds bad values for run to report after parsing: returning them
	// from Set would make the flag package print the value, secret and all.
	errs []error
}

// String lists keys only, because flag prints it in usage.
func (a *appsFlag) String() string {
	if a == nil {
		return ""
	}
	return strings.Join(a.keys(), ",")
}

func (a *appsFlag) Set(v string) error {
	a.errs = append(a.errs, a.add(v))
	return nil
}

// add records one key:secret. Errors name the key at most, never the secret.
func (a *appsFlag) add(v string) error {
	// Split at the first colon, as Basic auth does: keys cannot contain one,
	// secrets may.
	key, secret, ok := strings.Cut(v, ":")
	if !ok || key == "" || secret == "" {
		return fmt.Errorf("want %s with both parts non-empty", cmp.Or(a.format, "key:secret"))
	}
	if _, dup := a.m[key]; dup {
		return fmt.Errorf("%s %q given twice", cmp.Or(a.noun, "app"), key)
	}
	a.m[key] = secret
	return nil
}

func (a *appsFlag) keys() []string {
	keys := make([]string, 0, len(a.m))
	for k := range a.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (a *appsFlag) load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := a.add(line); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

// cloudAppsFlag collects --cloud-app client-id:secret:callback-url values.
type cloudAppsFlag struct {
	m map[string]simulator.CloudApp
	// errs: as appsFlag.errs, so the flag package never prints a secret.
	errs []error
}

// String lists client ids and callback URLs only, because flag prints it in
// usage and run in its start-up line.
func (c *cloudAppsFlag) String() string {
	if c == nil {
		return ""
	}
	parts := make([]string, 0, len(c.m))
	for _, k := range slices.Sorted(maps.Keys(c.m)) {
		parts = append(parts, k+" -> "+c.m[k].CallbackURL)
	}
	return strings.Join(parts, ", ")
}

func (c *cloudAppsFlag) Set(v string) error {
	c.errs = append(c.errs, c.add(v))
	return nil
}

// add splits at the first two colons: client ids (Basic auth) and secrets
// cannot hold one, the callback URL always does. Errors never quote the
// secret.
func (c *cloudAppsFlag) add(v string) error {
	key, rest, _ := strings.Cut(v, ":")
	secret, callback, ok := strings.Cut(rest, ":")
	if !ok {
		return errors.New("want client-id:secret:callback-url")
	}
	app := simulator.CloudApp{Secret: secret, CallbackURL: callback}
	if err := simulator.ValidateCloudApp(key, app); err != nil {
		return err
	}
	if _, dup := c.m[key]; dup {
		return fmt.Errorf("cloud app %q given twice", key)
	}
	c.m[key] = app
	return nil
}
