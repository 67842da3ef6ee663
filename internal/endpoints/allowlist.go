// Package endpoints holds the manager's allow-list of upstream hosts (--allowed-endpoint-hosts): the
// only places the operator sends credentials, whatever a custom resource names.
//
// Matching rules (each a deliberate choice; the README repeats them):
//   - Hosts match exactly, case-insensitively, after dropping one trailing dot (an absolute DNS name
//     and its relative spelling are one name). No name resolution: "localhost" is not 127.0.0.1.
//   - No host wildcards ("*.verizon.com"): the operator talks to two Verizon hosts, and a wildcard over a
//     domain also covers every name anyone can get a record under in it.
//   - IP literals match by address (IPv6 in brackets, as in URLs; "[::1]" and "[0::1]" are one); an
//     IPv4-mapped IPv6 address is not its IPv4 address, and zones are refused.
//   - An entry without a port allows only the scheme's default port (443 for https, 80 for http). A
//     different port on an allowed host can be someone else's listener (a NodePort or hostPort on a
//     node address), so another port must be named: "host:8443". "host:*" allows every port of the
//     host, for hosts whose every port the admin controls (loopback in tests, with simulators on
//     ephemeral ports).
package endpoints

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// DefaultHosts is the default of --allowed-endpoint-hosts: Verizon's ThingSpace and Cloud API hosts.
const DefaultHosts = "thingspace.verizon.com,api.cloudapi.verizon.com"

// anyPort marks an entry that allows every port.
const anyPort = -1

// entry is one allowed host with its port (0: the scheme's default, anyPort: any).
type entry struct {
	host string     // lower-case DNS name without trailing dot; "" for an IP literal
	addr netip.Addr // the IP literal, when host is ""
	port int
}

// AllowList is a parsed --allowed-endpoint-hosts. The zero value allows nothing.
type AllowList struct {
	entries []entry
	text    []string
}

// Parse reads a comma-separated list of host[:port] entries. Blanks around entries are ignored; an
// empty entry, a URL, a wildcard host, a port out of range or a malformed host is an error that names
// the entry.
func Parse(s string) (AllowList, error) {
	var l AllowList
	if strings.TrimSpace(s) == "" {
		return l, errors.New("the list is empty: every custom resource would be refused (the default is " + DefaultHosts + ")")
	}
	for i, raw := range strings.Split(s, ",") {
		e, err := parseEntry(strings.TrimSpace(raw))
		if err != nil {
			return AllowList{}, fmt.Errorf("entry %d %q: %w", i+1, strings.TrimSpace(raw), err)
		}
		l.entries = append(l.entries, e)
		l.text = append(l.text, e.String())
	}
	return l, nil
}

// MustParse is Parse for constants and tests; it panics on an error.
func MustParse(s string) AllowList {
	l, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return l
}

func parseEntry(s string) (entry, error) {
	switch {
	case s == "":
		return entry{}, errors.New("empty entry")
	case strings.Contains(s, "://") || strings.ContainsAny(s, "/?#@"):
		return entry{}, errors.New("want host or host:port, not a URL")
	case strings.Contains(s, "*") && !strings.HasSuffix(s, ":*"):
		return entry{}, errors.New("host wildcards are not supported: list each host")
	}
	host, port := s, 0
	switch {
	case strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
		host = s[1 : len(s)-1]
	case strings.ContainsAny(s, ":[]"):
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			// "::1" (IPv6 without brackets), "[::1" and the like.
			return entry{}, errors.New("write IPv6 addresses in brackets ([::1] or [::1]:8443) and ports as host:port")
		}
		host = h
		if p == "*" {
			port = anyPort
		} else if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 || p[0] == '0' {
			return entry{}, errors.New("port must be a number from 1 to 65535, or *")
		}
	}
	bracketed := strings.HasPrefix(s, "[")
	if a, err := netip.ParseAddr(host); err == nil {
		switch {
		case a.Zone() != "":
			return entry{}, errors.New("IPv6 zones are not supported")
		case a.Is6() != bracketed:
			return entry{}, errors.New("write IPv6 addresses, and only them, in brackets")
		}
		return entry{addr: a, port: port}, nil
	}
	if bracketed {
		return entry{}, errors.New("only an IPv6 address may stand in brackets")
	}
	name, err := normalName(host)
	if err != nil {
		return entry{}, err
	}
	return entry{host: name, port: port}, nil
}

// normalName checks a DNS name (RFC 1123 labels) and returns it lower-case without a trailing dot.
func normalName(h string) (string, error) {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if h == "" || len(h) > 253 {
		return "", errors.New("not a DNS name")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", errors.New("not a DNS name")
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return "", errors.New("not a DNS name (letters, digits, '-' and '.' only)")
			}
		}
	}
	return h, nil
}

// IsZero reports a list that allows nothing (the zero value).
func (l AllowList) IsZero() bool { return len(l.entries) == 0 }

// String is the list as the manager understood it (normalised, comma-separated).
func (l AllowList) String() string { return strings.Join(l.text, ",") }

func (e entry) String() string {
	h := e.host
	if h == "" {
		h = e.addr.String()
		if e.addr.Is6() {
			h = "[" + h + "]"
		}
	}
	switch e.port {
	case 0:
		return h
	case anyPort:
		return h + ":*"
	}
	return h + ":" + strconv.Itoa(e.port)
}

// Allows reports whether the operator may send requests to u (an absolute http or https URL, parsed
// as the API clients parse it). It says nothing about the scheme: --allow-insecure-endpoints decides
// that.
func (l AllowList) Allows(u *url.URL) bool {
	host, port, ok := HostPort(u)
	if !ok {
		return false
	}
	addr, ipErr := netip.ParseAddr(host)
	for _, e := range l.entries {
		switch {
		case e.port == 0 && port != defaultPort(u.Scheme), e.port > 0 && port != e.port:
			continue
		case e.host != "":
			if ipErr != nil && e.host == host {
				return true
			}
		case ipErr == nil && addr.Zone() == "" && e.addr == addr:
			return true
		}
	}
	return false
}

// HostPort is u's host as matched (lower-case, no trailing dot, no brackets) and its port (explicit
// or the scheme's default). false: no host, or a port that is not a number.
func HostPort(u *url.URL) (string, int, bool) {
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "" {
		return "", 0, false
	}
	port := defaultPort(u.Scheme)
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", 0, false
		}
		port = n
	}
	if port == 0 {
		return "", 0, false
	}
	return host, port, true
}

func defaultPort(scheme string) int {
	switch strings.ToLower(scheme) {
	case "https":
		return 443
	case "http":
		return 80
	}
	return 0
}
