package announce

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/credops/thingspace-operator/internal/tokenbroker"
)

func TestCurrent(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	app := types.NamespacedName{Namespace: "ns", Name: "app"}
	tok := func(s string, exp time.Duration) tokenbroker.Token {
		return tokenbroker.Token{AccessToken: s, ExpiresAt: now.Add(exp)}
	}
	for _, c := range []struct {
		name            string
		announced, held tokenbroker.Token
		want            string
		kept            bool
	}{
		{"the Secret still holds the dead token", tok("new", time.Hour), tok("old", -time.Second), "new", true},
		{"the Secret holds an older live token (renewBefore, handover)", tok("new", time.Hour), tok("old", time.Minute), "new", true},
		{"no Secret yet", tok("new", time.Hour), tokenbroker.Token{}, "new", true},
		{"the Secret caught up", tok("new", time.Hour), tok("new", time.Hour), "new", false},
		{"the announced token is dead", tok("new", 0), tok("old", -time.Minute), "old", false},
		{"a later token in the Secret (another manager)", tok("new", time.Hour), tok("later", 2*time.Hour), "later", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := New(func(types.NamespacedName) bool { return true })
			b.Announce(app, c.announced)
			if got := b.Current(app, c.held, now).AccessToken; got != c.want {
				t.Errorf("Current = %q, want %q", got, c.want)
			}
			if kept := b.Len() == 1; kept != c.kept {
				t.Errorf("entry kept = %v, want %v", kept, c.kept)
			}
		})
	}
}

func TestAnnounceKeepsNothingForAnAppNoSessionUses(t *testing.T) {
	app := types.NamespacedName{Namespace: "ns", Name: "app"}
	woken := 0
	b := New(func(types.NamespacedName) bool { woken++; return false })
	b.Announce(app, tokenbroker.Token{AccessToken: "t", ExpiresAt: time.Now().Add(time.Hour)})
	if woken != 1 || b.Len() != 0 {
		t.Fatalf("woken %d times, %d entries; want 1 and 0", woken, b.Len())
	}
	other := types.NamespacedName{Namespace: "ns", Name: "other"}
	if got := b.Current(other, tokenbroker.Token{AccessToken: "held"}, time.Now()).AccessToken; got != "held" {
		t.Fatalf("Current of an app never announced = %q, want the held token", got)
	}
	var nilBoard *Board
	nilBoard.Announce(app, tokenbroker.Token{AccessToken: "t"})
	if got := nilBoard.Current(app, tokenbroker.Token{AccessToken: "held"}, time.Now()).AccessToken; got != "held" {
		t.Fatalf("a nil board's Current = %q, want the held token", got)
	}
}
