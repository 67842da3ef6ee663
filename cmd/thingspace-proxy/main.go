// Command thingspace-proxy is the token sidecar: a reverse proxy on localhost that forwards a
// workload's calls to ThingSpace (or Verizon Cloud) with the credential the operator keeps in a
// Secret, read from its mounted directory (--credentials-dir) or through the API (--secret). The
// logic lives in internal/proxy; see the README's "Token sidecar". Once both ports are bound it
// prints one line to stdout, "listening on http://<proxy> health http://<health>", so callers using
// port 0 learn the ports; logs go to stderr as JSON.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/credops/thingspace-operator/internal/proxy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A second signal kills a shutdown that hangs.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "thingspace-proxy:", err)
		os.Exit(1)
	}
}

// run is main without process globals, so it can be tested.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := proxy.ParseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	s, err := proxy.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening on http://%s health http://%s\n", s.ProxyAddr, s.HealthAddr)
	return s.Serve(ctx)
}
