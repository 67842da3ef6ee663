package controller

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestStatusMemoryPrefersWhatWasWrittenForTheSameObject(t *testing.T) {
	m := newStatusMemory[string]()
	who := types.NamespacedName{Namespace: "ns", Name: "a"}
	if got := m.get(who, "u1", "cached"); got != "cached" {
		t.Fatalf("nothing written yet: got %q", got)
	}
	m.put(who, "u1", "written")
	if got := m.get(who, "u1", "stale-cached"); got != "written" {
		t.Fatalf("stale cache must lose to what this process wrote: got %q", got)
	}
	if got := m.get(who, "u2", "new-object"); got != "new-object" {
		t.Fatalf("a recreated object (new UID) must not inherit: got %q", got)
	}
	m.forget(who)
	if got := m.get(who, "u1", "cached"); got != "cached" {
		t.Fatalf("after forget: got %q", got)
	}
}
