package refreshes

import (
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/credops/thingspace-operator/internal/cloudapi"
)

func TestLifecycle(t *testing.T) {
	s := New()
	if _, ok := s.Get("u"); ok {
		t.Fatal("empty store has an entry")
	}
	s.Wrote("u", "m1")
	if e, ok := s.Lookup("u", "m1"); !ok || e.Outcome != Sent {
		t.Fatalf("after Wrote: %+v %v", e, ok)
	}
	if _, ok := s.Lookup("u", "m0"); ok {
		t.Fatal("Lookup matched another marker")
	}
	// An ending for another marker (a stale goroutine) changes nothing.
	s.Ended("u", "m0", Lost)
	s.Ended("u", "m1", NotRotated)
	if e, _ := s.Get("u"); e.Outcome != NotRotated {
		t.Fatalf("outcome %v", e.Outcome)
	}
	s.ForgetMarker("u", "m0")
	if s.Len() != 1 {
		t.Fatal("ForgetMarker dropped another marker's entry")
	}
	at := time.Unix(100, 0)
	s.Answered("u", "m2", cloudapi.Tokens{AccessToken: "a", RefreshToken: "r"}, at, at.Add(time.Hour))
	if e, ok := s.Lookup("u", "m2"); !ok || e.Outcome != Rotated || e.Tokens.RefreshToken != "r" || !e.ExpiresAt.Equal(at.Add(time.Hour)) {
		t.Fatalf("after Answered: %+v", e)
	}
	s.ForgetMarker("u", "m2")
	s.Wrote("v", "x")
	s.Forget("v")
	if s.Len() != 0 {
		t.Fatalf("%d entries left", s.Len())
	}
	for o, want := range map[Outcome]string{Sent: "Sent", NotRotated: "NotRotated", Rotated: "Rotated", Lost: "Lost", 0: "Unknown"} {
		if o.String() != want {
			t.Errorf("%d.String() = %q", o, o.String())
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	s := New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				uid := string(rune('a' + i))
				s.Wrote(uidOf(uid), "m")
				s.Ended(uidOf(uid), "m", NotRotated)
				s.Get(uidOf(uid))
				s.Forget(uidOf(uid))
			}
		})
	}
	wg.Wait()
	if s.Len() != 0 {
		t.Fatal("entries left")
	}
}

func uidOf(s string) (u types.UID) { return types.UID(s) }

// A code exchange's answer waits without a marker and goes only once it is the one stored.
func TestExchangedWaitsUntilStored(t *testing.T) {
	s := New()
	at := time.Unix(100, 0)
	s.Wrote("u", "m1")
	s.Exchanged("u", cloudapi.Tokens{AccessToken: "a", RefreshToken: "r"}, at, at.Add(time.Hour))
	e, ok := s.Get("u")
	if !ok || e.Outcome != Exchanged || e.Marker != "" || e.Tokens.RefreshToken != "r" || !e.Issued.Equal(at) {
		t.Fatalf("after Exchanged: %+v %v", e, ok)
	}
	// A newer exchange arrived after e was read: storing e does not drop it.
	s.Exchanged("u", cloudapi.Tokens{AccessToken: "a2", RefreshToken: "r2"}, at.Add(time.Second), at.Add(time.Hour))
	s.Stored("u", e)
	if cur, ok := s.Get("u"); !ok || cur.Tokens.RefreshToken != "r2" {
		t.Fatalf("a newer answer was dropped: %+v %v", cur, ok)
	}
	cur, _ := s.Get("u")
	s.Stored("u", cur)
	if s.Len() != 0 {
		t.Fatal("the stored answer is still remembered")
	}
}
