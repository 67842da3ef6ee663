package endpoints

import (
	"net/url"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want string // the normalised list; "" with err set
		err  string // a part of the error
	}{
		{in: DefaultHosts, want: "thingspace.verizon.com,api.cloudapi.verizon.com"},
		{in: " ThingSpace.Verizon.COM. , api.cloudapi.verizon.com:8443 ", want: "thingspace.verizon.com,api.cloudapi.verizon.com:8443"},
		{in: "127.0.0.1:*,10.244.0.1:30080", want: "127.0.0.1:*,10.244.0.1:30080"},
		{in: "[::1],[0:0::1]:8443,[2001:DB8::1]:*", want: "[::1],[::1]:8443,[2001:db8::1]:*"},
		{in: "a-b.c", want: "a-b.c"},
		{in: "", err: "empty"},
		{in: "  ", err: "empty"},
		{in: "a.com,,b.com", err: `entry 2 "": empty entry`},
		{in: "a.com,", err: "entry 2"},
		{in: "https://thingspace.verizon.com", err: "not a URL"},
		{in: "thingspace.verizon.com/api", err: "not a URL"},
		{in: "user@host", err: "not a URL"},
		{in: "*.verizon.com", err: "wildcards"},
		{in: "*", err: "wildcards"},
		{in: "*:*", err: "not a DNS name"},
		{in: "host:0", err: "port"},
		{in: "host:65536", err: "port"},
		{in: "host:0443", err: "port"},
		{in: "host:", err: "port"},
		{in: "host:https", err: "port"},
		{in: "::1", err: "brackets"},
		{in: "[::1", err: "brackets"},
		{in: "[127.0.0.1]", err: "brackets"},
		{in: "[thingspace.verizon.com]", err: "brackets"},
		{in: "[fe80::1%eth0]", err: "zones"},
		{in: "-a.com", err: "DNS name"},
		{in: "a..com", err: "DNS name"},
		{in: "a_b.com", err: "DNS name"},
		{in: "ünicode.de", err: "DNS name"},
		{in: strings.Repeat("a", 64) + ".com", err: "DNS name"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			l, err := Parse(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse(%q) = %v, %v; want an error with %q", tc.in, l, err, tc.err)
				}
				return
			}
			if err != nil || l.String() != tc.want {
				t.Fatalf("Parse(%q) = %q, %v; want %q", tc.in, l.String(), err, tc.want)
			}
		})
	}
}

func TestAllows(t *testing.T) {
	list := MustParse("thingspace.verizon.com,api.cloudapi.verizon.com:8443,127.0.0.1:*,10.0.0.1,[::1]:9000,proxy.internal:*")
	cases := []struct {
		url  string
		want bool
	}{
		{"https://thingspace.verizon.com", true},
		{"https://thingspace.verizon.com:443/api", true},
		{"https://THINGSPACE.verizon.com", true},
		{"https://thingspace.verizon.com./", true},
		{"http://thingspace.verizon.com", true}, // port 80, the http default: the scheme is --allow-insecure-endpoints' call
		{"http://thingspace.verizon.com:443", false},
		{"https://thingspace.verizon.com:8443", false},
		{"https://thingspace.verizon.com..", false},
		{"https://thingspace.verizon.com.evil.example", false},
		{"https://evilthingspace.verizon.com", false},
		{"https://verizon.com", false},
		{"https://x.thingspace.verizon.com", false},
		{"https://thingspace%2Everizon.com", false}, // does not parse, so no client is built
		{"https://api.cloudapi.verizon.com/cloud/1", false},
		{"https://api.cloudapi.verizon.com:8443/cloud/1", true},
		{"http://127.0.0.1:38211", true},
		{"http://127.0.0.1", true},
		{"http://127.0.0.2:38211", false},
		{"http://localhost:38211", false}, // no resolution
		{"http://[::ffff:127.0.0.1]:38211", false},
		{"https://10.0.0.1", true},
		{"https://10.0.0.1:30443", false},
		{"https://010.0.0.1", false},
		{"http://[::1]:9000", true},
		{"http://[0:0::1]:9000", true},
		{"http://[::1]:9001", false},
		{"http://[::1%25lo]:9000", false},
		{"https://proxy.internal:1", true},
		{"https://proxy.internal.:65535", true},
		{"https://thingspace.verizon.com:99999", false},
		{"https://thingspace.verizon.com:x", false},
		{"ftp://thingspace.verizon.com", false},
		{"/relative", false},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				if tc.want {
					t.Fatal(err)
				}
				return
			}
			if got := list.Allows(u); got != tc.want {
				t.Fatalf("Allows(%s) = %v, want %v", tc.url, got, tc.want)
			}
		})
	}
	if (AllowList{}).Allows(&url.URL{Scheme: "https", Host: "thingspace.verizon.com"}) {
		t.Fatal("the zero AllowList allows a host")
	}
}
