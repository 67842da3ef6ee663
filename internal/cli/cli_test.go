package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// run runs the plugin with a Connect that must not be reached, for command lines that are wrong or ask
// for help.
func runOffline(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	connected := false
	code := Run(context.Background(), args, Env{Stdout: &out, Stderr: &errOut,
		Connect: func(KubeFlags) (client.Client, string, error) {
			connected = true
			return nil, "", errors.New("offline")
		}})
	if connected && code == ExitUsage {
		t.Errorf("%q: connected before rejecting the command line", args)
	}
	return code, out.String(), errOut.String()
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "Commands:"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"--bogus", "status"}, "unknown flag: --bogus"},
		{[]string{"status", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"status", "extra"}, "status takes no arguments"},
		{[]string{"status", "-o", "yaml"}, `unknown output format "yaml"`},
		{[]string{"status", "-l", "a in (b"}, "invalid selector"},
		{[]string{"status", "-n"}, "flag needs an argument"},
		{[]string{"refresh"}, "refresh takes one <kind>/<name>"},
		{[]string{"refresh", "tsapp/a", "tsapp/b"}, "refresh takes one <kind>/<name>"},
		{[]string{"refresh", "secret/a"}, `unknown kind "secret"`},
		{[]string{"refresh", "tsapp"}, "want <kind>/<name>"},
		{[]string{"refresh", "tsapp/a", "--timeout", "soon"}, "invalid argument"},
		{[]string{"refresh", "tsapp/a", "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"consent"}, "consent takes the name of one CloudAuthorization"},
		{[]string{"consent", "cloudauth/a"}, "consent takes the name of one CloudAuthorization"},
		{[]string{"help", "bogus"}, `unknown command "bogus"`},
	} {
		code, out, errOut := runOffline(t, tc.args...)
		if code != ExitUsage || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q on stderr", tc.args, code, out, errOut, tc.want)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"status", "refresh", "consent", "--kubeconfig", "--context", "-n, --namespace"}},
		{[]string{"-h"}, []string{"Commands:"}},
		{[]string{"help"}, []string{"Commands:"}},
		{[]string{"status", "--help"}, []string{"-A, --all-namespaces", "-l, --selector", "-o, --output", "no Secret is read"}},
		{[]string{"help", "status"}, []string{"-A, --all-namespaces"}},
		{[]string{"refresh", "-h"}, []string{"--timeout duration", "--wait", "(default 1m0s)", "tsapp", "m2m", "cloudauth"}},
		{[]string{"-n", "x", "consent", "--help"}, []string{"--open", "get on cloudauthorizations"}},
	} {
		code, out, errOut := runOffline(t, tc.args...)
		if code != ExitOK || errOut != "" {
			t.Errorf("%q: exit %d, stderr %q", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: help lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

// The kubeconfig flags are accepted before and after the command, as kubectl does, and reach Connect.
func TestKubeFlagsEitherSide(t *testing.T) {
	for _, args := range [][]string{
		{"--kubeconfig", "/k", "--context", "c", "-n", "ns", "status"},
		{"status", "--kubeconfig=/k", "--context=c", "--namespace=ns"},
		{"-n", "other", "--kubeconfig", "/k", "status", "--context", "c", "-n", "ns"},
	} {
		var got KubeFlags
		code := Run(context.Background(), args, Env{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{},
			Connect: func(kf KubeFlags) (client.Client, string, error) {
				got = kf
				return nil, "", errors.New("stop here")
			}})
		if code != ExitFailure || got != (KubeFlags{Kubeconfig: "/k", Context: "c", Namespace: "ns"}) {
			t.Errorf("%q: exit %d, flags %+v", args, code, got)
		}
	}
}

// An unreachable API server is reported once, not once per kind, with exit 1.
func TestUnreachableServer(t *testing.T) {
	kc := t.TempDir() + "/kubeconfig"
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: iot}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"--kubeconfig", kc, "status"}, Env{Stdout: &out, Stderr: &errOut})
	if code != ExitFailure || strings.Count(errOut.String(), "error:") != 1 || strings.Count(errOut.String(), "list ") != 1 ||
		strings.Contains(errOut.String()+out.String(), "not-a-real-token") {
		t.Errorf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	code = Run(context.Background(), []string{"--kubeconfig", kc, "--context", "nope", "status"}, Env{Stdout: &out, Stderr: &errOut})
	if code != ExitFailure || !strings.Contains(errOut.String(), `context was not found for specified context: nope`) {
		t.Errorf("--context nope: exit %d\n%s", code, errOut.String())
	}
}
