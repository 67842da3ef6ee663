package main

import (
	"strings"
	"testing"
)

func TestShardOptions(t *testing.T) {
	ok := shardFlags{selector: "shard=a", leaseID: "shard-a.thingspace-operator.credops.io"}
	o, err := ok.shardOptions("", "ops")
	if err != nil || o.LabelSelector.String() != "shard=a" || o.RegistryNamespace != "ops" || o.Identity != ok.leaseID {
		t.Fatalf("%+v, %v", o, err)
	}
	if o, _ := ok.shardOptions("leases", "ops"); o.RegistryNamespace != "leases" {
		t.Errorf("registry namespace %q, want the leader-election namespace", o.RegistryNamespace)
	}
	ok.registryNamespace = "shared"
	if o, _ := ok.shardOptions("leases", "ops"); o.RegistryNamespace != "shared" {
		t.Errorf("registry namespace %q, want the flag's", o.RegistryNamespace)
	}
	if o, err := (shardFlags{leaseID: "x"}).shardOptions("", ""); err != nil || !o.LabelSelector.Empty() || o.RegistryNamespace != "" {
		t.Errorf("no flags: %+v, %v", o, err)
	}
	for _, bad := range []struct {
		f    shardFlags
		want string
	}{
		{shardFlags{selector: "shard in (a", leaseID: "x"}, "--watch-label-selector"},
		{shardFlags{selector: "shard==a,,", leaseID: "x"}, "--watch-label-selector"},
		{shardFlags{leaseID: "Not A Lease"}, "--leader-election-id"},
		{shardFlags{leaseID: "x", registryNamespace: "Bad_NS"}, "--holder-registry-namespace"},
	} {
		if _, err := bad.f.shardOptions("", "ops"); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want an error about %s", bad.f, err, bad.want)
		}
	}
}
