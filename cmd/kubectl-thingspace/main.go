// Command kubectl-thingspace is the thingspace-operator's kubectl plugin (kubectl thingspace status,
// refresh, consent). Install it with
//
//	go install github.com/credops/thingspace-operator/cmd/kubectl-thingspace@latest
//
// and kubectl finds it on $PATH. The commands live in internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/credops/thingspace-operator/internal/cli"
)

func main() {
	// Ctrl-C stops a `refresh` wait cleanly (the request itself stays, the operator still acts on it).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
