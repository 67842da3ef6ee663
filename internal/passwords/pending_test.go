package passwords

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestStoreKeepsTheNewestUntilItIsStored(t *testing.T) {
	s := NewStore()
	k := types.NamespacedName{Namespace: "ns", Name: "uws"}
	if _, ok := s.Get(k); ok {
		t.Fatal("an empty store has a pending password")
	}
	s.Put(k, Pending{Password: "Old1!pass", ResetAt: time.Unix(1, 0)})
	s.Put(k, Pending{Password: "New2!pass", ResetAt: time.Unix(2, 0)})
	s.Stored(k, "Old1!pass") // a late confirmation of the older write must not drop the newer password
	if p, ok := s.Get(k); !ok || p.Password != "New2!pass" {
		t.Fatalf("got %v %v, want the newer password still pending", p.ResetAt, ok)
	}
	s.Stored(k, "New2!pass")
	if _, ok := s.Get(k); ok {
		t.Fatal("a stored password is still pending")
	}
}
