package fakeclock

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// The primary key is shared with another app b (no standby) that renews its token at expiry. The
// handover to the standby at P.exp-hb issues the standby token S at P.exp-hb, so the primary's next
// token (b's, issued at P.exp) expires exactly hb after S: CheckHandover wants more, gives up, and S is
// renewed at its expiry with the standby key, which keeps the same phase. a never hands back and loses
// its overlap for good (before CheckHandover forgave the rounding: handoverSlack).
func TestStandbyHandsBackWhenThePrimaryKeyIsShared(t *testing.T) {
	f := newFixture(t, simulator.Config{TokenLifetime: time.Hour})
	f.appCreds()
	f.standbyKey()
	f.app("b", "creds")
	f.waitPublished("b", "", "")
	f.app("a", "creds", withStandby(0))
	f.waitPublished("a", "", v1alpha1.KeySetPrimary)
	f.settle(300 * time.Millisecond)
	end := f.clk.Now().Add(5 * time.Hour)
	var sets []string
	for f.clk.Now().Before(end) {
		app := f.tsApp("a")
		next := app.Status.RenewalTime.Time
		if app.Status.NextHandoverTime != nil && app.Status.NextHandoverTime.Before(app.Status.RenewalTime) {
			next = app.Status.NextHandoverTime.Time
		}
		if b := f.tsApp("b"); b.Status.RenewalTime.Before(&metav1.Time{Time: next}) {
			next = b.Status.RenewalTime.Time
		}
		if !next.After(f.clk.Now()) {
			next = f.clk.Now().Add(time.Second)
		}
		f.stepTo(next)
		f.settle(300 * time.Millisecond)
		if ks := f.tsApp("a").Status.ActiveKeySet; len(sets) == 0 || sets[len(sets)-1] != ks {
			sets = append(sets, ks)
		}
	}
	// 5 hours of 1 h tokens: about 5 handovers each way.
	if len(sets) < 6 {
		t.Fatalf("active key sets over 5 h: %v; Overlap %+v", sets, overlap(f.tsApp("a")))
	}
}
