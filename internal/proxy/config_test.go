package proxy

import (
	"io"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // substring of the error; "" for success
	}{
		{[]string{"--credentials-dir=/var/run/thingspace"}, ""},
		{[]string{"--secret=fleet/fleet-app-token"}, ""},
		{[]string{"--secret=fleet/fleet-app-token", "--kubeconfig=/tmp/k"}, ""},
		{[]string{"--credentials-dir=/d", "--upstream=http://127.0.0.1:8088", "--allow-insecure-upstream"}, ""},
		{[]string{"--credentials-dir=/d", "--upstream=https://api.cloudapi.verizon.com/cloud/1"}, ""},
		{nil, "exactly one"},
		{[]string{"--credentials-dir=/d", "--secret=a/b"}, "exactly one"},
		{[]string{"--secret=fleet-app-token"}, "<namespace>/<name>"},
		{[]string{"--secret=Fleet/x"}, "<namespace>/<name>"},
		{[]string{"--secret=a/b/c"}, "<namespace>/<name>"},
		{[]string{"--credentials-dir=/d", "--kubeconfig=/k"}, "--secret only"},
		{[]string{"--credentials-dir=/d", "--upstream=http://127.0.0.1:8088"}, "plain http"},
		{[]string{"--credentials-dir=/d", "--upstream=https://h/?q=1"}, "query"},
		{[]string{"--credentials-dir=/d", "--max-wait=60s"}, "--max-wait"},
		{[]string{"--credentials-dir=/d", "--max-replay-body-bytes=0"}, "--max-replay-body-bytes"},
		{[]string{"--credentials-dir=/d", "--upstream-timeout=0s"}, "positive"},
		{[]string{"--credentials-dir=/d", "extra"}, "unexpected"},
		{[]string{"--credentials-dir=/d", "--no-such-flag"}, "not defined"},
	} {
		c, err := ParseFlags(tc.args, io.Discard)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("ParseFlags(%q) = %v, want %q", tc.args, err, tc.want)
			continue
		}
		if err == nil && c.Listen != DefaultListen {
			t.Errorf("ParseFlags(%q): listen %q, want the default %q", tc.args, c.Listen, DefaultListen)
		}
	}
	c, err := ParseFlags([]string{"--secret=fleet/fleet-session"}, io.Discard)
	if err != nil || c.SecretNamespace != "fleet" || c.SecretName != "fleet-session" || c.Upstream.String() != DefaultUpstream {
		t.Errorf("--secret=fleet/fleet-session: %+v, %v", c, err)
	}
}
