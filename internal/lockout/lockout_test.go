package lockout

import "testing"

func TestGateNeverLetsAUsernameReachTheLock(t *testing.T) {
	g := New()
	k := Key("https://ts", "fleet")
	wrong1, wrong2, wrong3, right := Digest("fleet", "a"), Digest("fleet", "b"), Digest("fleet", "c"), Digest("fleet", "ok")

	if ok, _ := g.Allow(k, wrong1, false); !ok {
		t.Fatal("a first login must be allowed")
	}
	g.Failed(k, wrong1)
	if ok, _ := g.Allow(k, wrong1, true); ok {
		t.Fatal("a refused password must never be sent again, even on request")
	}
	if ok, _ := g.Allow(k, wrong2, false); !ok {
		t.Fatal("a changed password gets one try")
	}
	g.Failed(k, wrong2)
	if ok, why := g.Allow(k, wrong3, false); ok || why == "" {
		t.Fatal("after 2 failures the operator must stop by itself")
	}
	if ok, _ := g.Allow(k, wrong3, true); !ok {
		t.Fatal("a person may ask once more")
	}
	g.Failed(k, wrong3)
	g.Failed(k, Digest("fleet", "d"))
	if ok, _ := g.Allow(k, right, true); ok || g.Failures(k) != HardCap {
		t.Fatalf("the hard cap must hold one short of Verizon's lock (failures=%d)", g.Failures(k))
	}
	g.Succeeded(k)
	if ok, _ := g.Allow(k, wrong1, false); !ok || g.Failures(k) != 0 {
		t.Fatal("a success resets the count, as the platform does")
	}
}

func TestGateSeedIsIdempotent(t *testing.T) {
	g := New()
	k := Key("https://ts", "fleet")
	d := Digest("fleet", "a")
	g.Seed(k, 1, d)
	g.Seed(k, 1, d)
	if g.Failures(k) != 1 {
		t.Fatalf("seeding twice double-counted: %d", g.Failures(k))
	}
	if ok, _ := g.Allow(k, d, false); ok {
		t.Fatal("a seeded refused password must stay refused")
	}
}

func TestGateTellsARefusedPasswordFromALimit(t *testing.T) {
	g := New()
	k := Key("https://ts", "fleet")
	a, b, c := Digest("fleet", "a"), Digest("fleet", "b"), Digest("fleet", "c")
	g.Failed(k, a)
	g.Failed(k, b)
	if !g.Refused(k, a) || g.Refused(k, c) {
		t.Fatal("Refused must be true only for passwords the platform refused")
	}
	// c is held back by the limit, not refused: a status must not record it as refused.
	if ok, _ := g.Allow(k, c, false); ok {
		t.Fatal("the limit must hold c back")
	}
	if g.Refused(k, c) {
		t.Fatal("being held back must not mark c refused")
	}
}
