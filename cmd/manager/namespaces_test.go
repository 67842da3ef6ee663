package main

import (
	"slices"
	"testing"
)

func TestWatchNamespaces(t *testing.T) {
	for _, tc := range []struct {
		list  string
		extra []string
		want  []string
		err   bool
	}{
		{list: "", want: nil},
		{list: " , ", want: nil},
		{list: "", extra: []string{"operator"}, want: nil}, // all namespaces already include it
		{list: "a", want: []string{"a"}},
		{list: "b, a ,b", want: []string{"a", "b"}},
		{list: "a,b", extra: []string{"operator"}, want: []string{"a", "b", "operator"}},
		{list: "a,operator", extra: []string{"operator", ""}, want: []string{"a", "operator"}},
		{list: "a,Not_A_Namespace", err: true},
		{list: "a/b", err: true},
	} {
		got, err := watchNamespaces(tc.list, tc.extra...)
		if (err != nil) != tc.err {
			t.Errorf("watchNamespaces(%q, %q) error = %v, want error %v", tc.list, tc.extra, err, tc.err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("watchNamespaces(%q, %q) = %q, want %q", tc.list, tc.extra, got, tc.want)
		}
	}
}
