package main

import (
	"errors"
	"testing"
)

func TestClusterResourceNamespace(t *testing.T) {
	noFile := func(string) ([]byte, error) { return nil, errors.New("no such file") }
	file := func(ns string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if p != serviceAccountNamespaceFile {
				t.Fatalf("read %s", p)
			}
			return []byte(ns + "\n"), nil
		}
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "POD_NAMESPACE" {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name, flag, env string
		read            func(string) ([]byte, error)
		want            string
	}{
		{name: "flag wins", flag: "platform", env: "ops", read: file("sa"), want: "platform"},
		{name: "downward API", env: "ops", read: file("sa"), want: "ops"},
		{name: "service account file", read: file("sa"), want: "sa"},
		{name: "outside a cluster", read: noFile, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := clusterResourceNamespace(tc.flag, env(tc.env), tc.read); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
