package policy

import (
	"testing"
	"time"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// A token another manager holds (SharedElsewhere) is never rotated: renewBefore falls back to renewal
// at expiry and a refresh request is observed without a revoke; what would have rotated says so.
func TestDecideAppSharedElsewhere(t *testing.T) {
	tok := AppToken{AccessToken: "t1", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	base := func() AppInput {
		return AppInput{Generation: 1, Status: &v1alpha1.ThingSpaceAppStatus{Conditions: readyTrue(1)},
			CredentialsVersion: "7", Held: tok, Current: tok, Now: t0.Add(10 * time.Minute), SharedElsewhere: true}
	}
	cases := []struct {
		name    string
		mutate  func(*AppInput)
		step    AppStep
		next    time.Time
		skipped string
		refresh string
	}{
		{"renewBefore due: wait for expiry instead of rotating", func(in *AppInput) {
			in.RenewBefore, in.Now = 10*time.Minute, t0.Add(50*time.Minute)
		}, AppWait, tok.ExpiresAt, WhyRenewBefore, ""},
		{"renewBefore not due yet: nothing skipped, planned at expiry", func(in *AppInput) {
			in.RenewBefore = 10 * time.Minute
		}, AppWait, tok.ExpiresAt, "", ""},
		{"refresh requested: observed, no rotation", func(in *AppInput) {
			in.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "r1"}
		}, AppWait, tok.ExpiresAt, WhyRefreshRequested, "r1"},
		{"refresh requested while another holder's newer token waits: adopt it", func(in *AppInput) {
			in.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "r1"}
			in.Current = AppToken{AccessToken: "t2", IssuedAt: t0, ExpiresAt: t0.Add(2 * time.Hour)}
		}, AppAdopt, time.Time{}, WhyRefreshRequested, "r1"},
		{"expired: fetch as always (no revoke in it)", func(in *AppInput) {
			in.RenewBefore, in.Now = 10*time.Minute, tok.ExpiresAt
		}, AppFetch, time.Time{}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base()
			c.mutate(&in)
			d := DecideApp(in)
			if d.Step != c.step || !d.Next.Equal(c.next) || d.RevokeSkipped != c.skipped || d.Refresh != c.refresh || d.Why != "" {
				t.Fatalf("got %+v; want step %v, next %v, skipped %q, refresh %q", d, c.step, c.next, c.skipped, c.refresh)
			}
			// Not shared, the same input rotates or waits for the window (the guard is what changed it).
			in.SharedElsewhere = false
			if un := DecideApp(in); un.RevokeSkipped != "" || (c.skipped != "" && c.step == AppWait && un.Step != AppRotate) {
				t.Fatalf("not shared: %+v", un)
			}
		})
	}
}

// After a step, the next look of a shared token is at its expiry, not at the renewBefore window (which
// would come round again at once).
func TestAppRefreshedSharedElsewhere(t *testing.T) {
	held := AppToken{AccessToken: "t", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	in := AppInput{Generation: 1, Status: &v1alpha1.ThingSpaceAppStatus{Conditions: readyTrue(1)}, Held: held, Current: held,
		Now: t0.Add(55 * time.Minute), RenewBefore: 10 * time.Minute, SharedElsewhere: true}
	if p := AppRefreshed(in, held, time.Time{}, true); !p.Next.Equal(held.ExpiresAt) {
		t.Fatalf("idle: next %v, want the expiry %v", p.Next, held.ExpiresAt)
	}
	fresh := AppToken{AccessToken: "n", IssuedAt: held.ExpiresAt, ExpiresAt: held.ExpiresAt.Add(time.Hour)}
	if p := AppRefreshed(in, fresh, time.Time{}, false); !p.Next.Equal(fresh.ExpiresAt) {
		t.Fatalf("new token: next %v, want its expiry", p.Next)
	}
}

// A consumer whose cluster object is in another shard says so, keeping its last copy.
func TestConsumersOfAnotherShard(t *testing.T) {
	held := AppToken{AccessToken: "t", ExpiresAt: t0.Add(time.Hour)}
	d := DecideConsumer(ConsumerInput{Kind: "ClusterThingSpaceApp", Name: "c", Admission: Admission{Allowed: true}, Held: held, Now: t0,
		OtherShard: "ClusterThingSpaceApp c belongs to another shard"})
	if d.Step != ConsumerKeep || d.Reason != v1alpha1.ReasonOtherShard || d.Message[:41] != "ClusterThingSpaceApp c belongs to another" || d.Token != held {
		t.Errorf("app consumer: %+v", d)
	}
	if d := DecideConsumer(ConsumerInput{Kind: "ClusterThingSpaceApp", Name: "c", Admission: Admission{Allowed: true}, Now: t0}); d.Reason != v1alpha1.ReasonAppNotReady {
		t.Errorf("no shard said: %+v", d)
	}
	s := DecideSessionConsumer(SessionConsumerFacts{Name: "c", OtherShard: "ClusterM2MSession c belongs to another shard"})
	if s.Step != ConsumerKeep || s.Reason != v1alpha1.ReasonOtherShard {
		t.Errorf("session consumer: %+v", s)
	}
	if s := DecideSessionConsumer(SessionConsumerFacts{Name: "c"}); s.Reason != v1alpha1.ReasonPending {
		t.Errorf("no shard said: %+v", s)
	}
}
