package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	// ExitUsage: the command line was wrong; nothing was sent to the API server.
	ExitUsage = 2
)

// Env is what Run needs from the outside world; tests replace each part.
type Env struct {
	Stdout, Stderr io.Writer
	// Clock defaults to the real clock.
	Clock clock.Clock
	// Connect builds the client and the default namespace from the kubeconfig flags; nil: Connect.
	Connect func(KubeFlags) (client.Client, string, error)
	// Open and PollInterval are passed to the Runner.
	Open         func(url string) error
	PollInterval time.Duration
}

// usageError is a wrong command line: exit 2.
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// command is one subcommand: its help, and its flags bound to a function that runs it.
type command struct {
	name, args, summary, long string
	setup                     func(fs *pflag.FlagSet) func(ctx context.Context, r *Runner, args []string) error
}

var commands = []command{
	{name: "status", args: "[-A] [-l selector] [-o json]",
		summary: "One table of every ThingSpaceApp, M2MSession and CloudAuthorization",
		long: `With -A the cluster-scoped ClusterThingSpaceApps and ClusterM2MSessions too. Prints READY (with the reason when not True), EXPIRES and NEXT RENEWAL (relative and absolute) and
the LAST FAILURE status records, from the objects' status only: no Secret is read.`,
		setup: setupStatus},
	{name: "refresh", args: "<kind>/<name> [--timeout 60s] [--wait=false]",
		summary: "Ask the operator for a refresh now, wait for it and report the outcome",
		long: `Sets the thingspace.credops.io/refresh-requested annotation to the current time and waits until
status.observedRefreshRequest shows the operator acted on it. Kinds: thingspaceapp (tsapp), m2msession
(m2m), cloudauthorization (cloudauth), and the cluster-scoped clusterthingspaceapp (ctsapp) and
clusterm2msession (cm2m), which ignore -n; in any case. Exits 1 on timeout or when the object is not
Ready afterwards.`,
		setup: setupRefresh},
	{name: "consent", args: "<name> [--open]",
		summary: "Print (or open) a CloudAuthorization's consent link",
		long: `Prints the consent link (from the Secret status.consentSecretName names, data key
authorization_url) and when it expires, or says the CloudAuthorization is already authorized. Needs RBAC
get on cloudauthorizations and on that Secret: viewers cannot consent.`,
		setup: setupConsent},
}

func setupStatus(fs *pflag.FlagSet) func(context.Context, *Runner, []string) error {
	var o StatusOptions
	var selector string
	fs.BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "List the objects of every namespace.")
	fs.StringVarP(&selector, "selector", "l", "", "Label selector (for example app=billing,tier!=test).")
	fs.StringVarP(&o.Output, "output", "o", "", "Output format: empty for the table, or json.")
	return func(ctx context.Context, r *Runner, args []string) error {
		if len(args) > 0 {
			return usagef("status takes no arguments, got %q", args)
		}
		if o.Output != "" && o.Output != "json" {
			return usagef("unknown output format %q: use json, or nothing for the table", o.Output)
		}
		sel, err := labels.Parse(selector)
		if err != nil {
			return usagef("invalid selector %q: %v", selector, err)
		}
		o.Selector = sel
		if r == nil {
			return nil
		}
		return r.Status(ctx, o)
	}
}

func setupRefresh(fs *pflag.FlagSet) func(context.Context, *Runner, []string) error {
	o := RefreshOptions{Wait: true, Timeout: DefaultRefreshTimeout}
	fs.BoolVar(&o.Wait, "wait", true, "Wait until the operator has acted on the request.")
	fs.DurationVar(&o.Timeout, "timeout", DefaultRefreshTimeout, "How long to wait.")
	return func(ctx context.Context, r *Runner, args []string) error {
		if len(args) != 1 {
			return usagef("refresh takes one <kind>/<name>, got %d argument(s)", len(args))
		}
		if _, _, err := parseTarget(args[0]); err != nil {
			return usageError{err}
		}
		if o.Timeout <= 0 {
			return usagef("--timeout must be positive, got %s", o.Timeout)
		}
		o.Target = args[0]
		if r == nil {
			return nil
		}
		return r.Refresh(ctx, o)
	}
}

func setupConsent(fs *pflag.FlagSet) func(context.Context, *Runner, []string) error {
	var o ConsentOptions
	fs.BoolVar(&o.Open, "open", false, "Also try to open the link in a browser (xdg-open or open).")
	return func(ctx context.Context, r *Runner, args []string) error {
		if len(args) != 1 || strings.Contains(args[0], "/") {
			return usagef("consent takes the name of one CloudAuthorization, got %q", args)
		}
		o.Name = args[0]
		if r == nil {
			return nil
		}
		return r.Consent(ctx, o)
	}
}

// Run runs the plugin with args (without the program name) and returns the exit code. The command line
// is checked in full before anything connects to the API server.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Clock == nil {
		env.Clock = clock.RealClock{}
	}
	if env.Connect == nil {
		env.Connect = Connect
	}
	var kf KubeFlags
	global := newFlagSet("kubectl thingspace", &kf)
	global.SetInterspersed(false) // the first argument that is not a flag is the command
	if err := global.Parse(args); errors.Is(err, pflag.ErrHelp) {
		topUsage(env.Stdout, global)
		return ExitOK
	} else if err != nil {
		return fail(env, usageError{err})
	}
	rest := global.Args()
	if len(rest) == 0 {
		topUsage(env.Stderr, global)
		return ExitUsage
	}
	name, rest := rest[0], rest[1:]
	if name == "help" && len(rest) <= 1 {
		if len(rest) == 0 {
			topUsage(env.Stdout, global)
			return ExitOK
		}
		name, rest = rest[0], []string{"--help"}
	}
	cmd, ok := findCommand(name)
	if !ok {
		return fail(env, usagef("unknown command %q: use status, refresh or consent (see --help)", name))
	}
	fs := newFlagSet("kubectl thingspace "+cmd.name, &kf)
	run := cmd.setup(fs)
	if err := fs.Parse(rest); errors.Is(err, pflag.ErrHelp) {
		commandUsage(env.Stdout, cmd, fs)
		return ExitOK
	} else if err != nil {
		return fail(env, usagef("%s: %v", cmd.name, err))
	}
	if err := run(ctx, nil, fs.Args()); err != nil { // checks the arguments only
		return fail(env, err)
	}
	c, ns, err := env.Connect(kf)
	if err != nil {
		return fail(env, err)
	}
	r := &Runner{Client: c, Out: env.Stdout, Clock: env.Clock, Namespace: ns, PollInterval: env.PollInterval, Open: env.Open}
	if err := run(ctx, r, fs.Args()); err != nil {
		return fail(env, err)
	}
	return ExitOK
}

func findCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// newFlagSet is a flag set with the kubeconfig flags, bound to kf keeping the values already parsed
// (they may come before the command or after it, as with kubectl).
func newFlagSet(name string, kf *KubeFlags) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // Run prints errors and help itself
	fs.StringVar(&kf.Kubeconfig, "kubeconfig", kf.Kubeconfig, "Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).")
	fs.StringVar(&kf.Context, "context", kf.Context, "The kubeconfig context to use.")
	fs.StringVarP(&kf.Namespace, "namespace", "n", kf.Namespace, "The namespace (default: the context's, else default).")
	return fs
}

func fail(env Env, err error) int {
	fmt.Fprintln(env.Stderr, "error: "+err.Error())
	if isUsage(err) {
		fmt.Fprintln(env.Stderr, "See 'kubectl thingspace --help'.")
		return ExitUsage
	}
	return ExitFailure
}

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

func topUsage(w io.Writer, global *pflag.FlagSet) {
	fmt.Fprint(w, "kubectl thingspace: see and drive the thingspace-operator's credentials.\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nUsage:\n  kubectl thingspace [flags] <command> [arguments]\n  kubectl thingspace <command> --help\n\nFlags:\n%s", global.FlagUsages())
}

func commandUsage(w io.Writer, c command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "%s.\n\n%s\n\nUsage:\n  kubectl thingspace %s %s\n\nFlags:\n%s", c.summary, c.long, c.name, c.args, fs.FlagUsages())
}
