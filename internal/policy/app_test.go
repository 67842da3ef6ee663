package policy

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/renewal"
	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/upstream"
)

func mt(t time.Time) *metav1.Time { v := metav1.NewTime(t); return &v }

func readyTrue(gen int64) []metav1.Condition {
	return []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonTokenValid, ObservedGeneration: gen}}
}

func TestDecideApp(t *testing.T) {
	tok := AppToken{AccessToken: "t1", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	newer := AppToken{AccessToken: "t2", IssuedAt: t0.Add(time.Minute), ExpiresAt: t0.Add(time.Hour + time.Minute)}
	base := func() AppInput {
		return AppInput{Generation: 1, Status: &v1alpha1.ThingSpaceAppStatus{Conditions: readyTrue(1)},
			CredentialsVersion: "7", Held: tok, Current: tok, Now: t0.Add(10 * time.Minute)}
	}
	cases := []struct {
		name   string
		mutate func(*AppInput)
		step   AppStep
		check  func(*testing.T, AppDecision)
	}{
		{"valid token, no window: wait until expiry", func(*AppInput) {}, AppWait, func(t *testing.T, d AppDecision) {
			if !d.Next.Equal(tok.ExpiresAt) {
				t.Fatalf("next %v", d.Next)
			}
		}},
		{"no valid token: fetch", func(in *AppInput) { in.Current = AppToken{} }, AppFetch, nil},
		{"broker token expired: fetch", func(in *AppInput) { in.Now = tok.ExpiresAt }, AppFetch, nil},
		{"another holder got a newer token: adopt", func(in *AppInput) { in.Current = newer }, AppAdopt, nil},
		{"refresh requested: rotate", func(in *AppInput) {
			in.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "r1"}
		}, AppRotate, func(t *testing.T, d AppDecision) {
			if d.Refresh != "r1" || d.Why != WhyRefreshRequested {
				t.Fatalf("%+v", d)
			}
		}},
		{"refresh request already observed: wait", func(in *AppInput) {
			in.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "r1"}
			in.Status.ObservedRefreshRequest = "r1"
		}, AppWait, nil},
		{"refresh requested without a valid token: fetch serves it", func(in *AppInput) {
			in.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "r1"}
			in.Current = AppToken{}
		}, AppFetch, func(t *testing.T, d AppDecision) {
			if d.Refresh != "r1" {
				t.Fatalf("%+v", d)
			}
		}},
		{"renewBefore due: rotate", func(in *AppInput) {
			in.RenewBefore = 10 * time.Minute
			in.Now = t0.Add(50 * time.Minute)
		}, AppRotate, func(t *testing.T, d AppDecision) {
			if d.Why != WhyRenewBefore {
				t.Fatalf("%+v", d)
			}
		}},
		{"renewBefore not due: wait for it", func(in *AppInput) { in.RenewBefore = 10 * time.Minute }, AppWait, func(t *testing.T, d AppDecision) {
			if !d.Next.Equal(t0.Add(50 * time.Minute)) {
				t.Fatalf("next %v", d.Next)
			}
		}},
		{"scenario 1: renewBefore 58m with jitter does not rotate a young token", func(in *AppInput) {
			in.RenewBefore, in.Jitter, in.Now = 58*time.Minute, 0.5, t0.Add(time.Second)
		}, AppWait, nil},
		{"rejected credentials unchanged: hold", func(in *AppInput) {
			in.Status.RejectedCredentialsVersion = "7"
			in.Current = AppToken{}
		}, AppHold, nil},
		{"rejected credentials changed: clear and fetch", func(in *AppInput) {
			in.Status.RejectedCredentialsVersion = "6"
			in.Current = AppToken{}
		}, AppFetch, func(t *testing.T, d AppDecision) {
			if !d.ClearRejected {
				t.Fatal("rejection not cleared")
			}
		}},
		{"rejected, spec changed: clear and fetch", func(in *AppInput) {
			in.Status.RejectedCredentialsVersion = "7"
			in.Generation = 2
			in.Current = AppToken{}
		}, AppFetch, nil},
		{"retry slot ahead: wait for it", func(in *AppInput) {
			in.Current = AppToken{}
			in.Status.FailedRefreshAttempts = 2
			in.Status.RenewalTime = mt(in.Now.Add(time.Minute))
		}, AppRetryLater, func(t *testing.T, d AppDecision) {
			if !d.Next.Equal(t0.Add(11*time.Minute)) || d.Reason != "" {
				t.Fatalf("%+v", d)
			}
		}},
		{"retry slot ahead with the held token expired: not ready", func(in *AppInput) {
			in.Now = tok.ExpiresAt.Add(time.Second)
			in.Current = AppToken{}
			in.Status.FailedRefreshAttempts = 2
			in.Status.RenewalTime = mt(in.Now.Add(time.Minute))
		}, AppRetryLater, func(t *testing.T, d AppDecision) {
			if d.Ready != metav1.ConditionFalse || d.Reason != v1alpha1.ReasonUpstreamUnavailable || !strings.Contains(d.Message, "expired") {
				t.Fatalf("%+v", d)
			}
		}},
		{"scenario 18: retry slot ahead with the held token revoked: not ready", func(in *AppInput) {
			in.HeldRevoked = true
			in.Current = AppToken{}
			in.Status.FailedRefreshAttempts = 1
			in.Status.RenewalTime = mt(in.Now.Add(time.Minute))
		}, AppRetryLater, func(t *testing.T, d AppDecision) {
			if d.Ready != metav1.ConditionFalse || !strings.Contains(d.Message, "revoked") {
				t.Fatalf("%+v", d)
			}
		}},
		{"retry slot ahead does not hold back adopting", func(in *AppInput) {
			in.Current = newer
			in.Status.FailedRefreshAttempts = 2
			in.Status.RenewalTime = mt(in.Now.Add(time.Minute))
		}, AppAdopt, nil},
		{"retry slot passed: fetch", func(in *AppInput) {
			in.Current = AppToken{}
			in.Status.FailedRefreshAttempts = 2
			in.Status.RenewalTime = mt(in.Now.Add(-time.Second))
		}, AppFetch, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base()
			c.mutate(&in)
			d := DecideApp(in)
			if d.Step != c.step {
				t.Fatalf("step %v, want %v (%+v)", d.Step, c.step, d)
			}
			if c.check != nil {
				c.check(t, d)
			}
		})
	}
}

func TestAppPlannedRenewal(t *testing.T) {
	tok := AppToken{AccessToken: "t", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	st := func(renewal time.Time) *v1alpha1.ThingSpaceAppStatus {
		return &v1alpha1.ThingSpaceAppStatus{Conditions: readyTrue(1),
			RefreshStatus: v1alpha1.RefreshStatus{ExpiresAt: mt(tok.ExpiresAt), RenewalTime: mt(renewal)}}
	}
	if got := AppPlannedRenewal(st(t0.Add(49*time.Minute)), 1, 10*time.Minute, tok, 0); !got.Equal(t0.Add(49 * time.Minute)) {
		t.Fatalf("a recorded jittered plan for this token is kept: %v", got)
	}
	if got := AppPlannedRenewal(st(t0.Add(49*time.Minute)), 2, 10*time.Minute, tok, 0); !got.Equal(t0.Add(50 * time.Minute)) {
		t.Fatalf("a new generation plans afresh: %v", got)
	}
	// Scenario 1: a plan recorded before the fix (before issue) is not kept.
	if got := AppPlannedRenewal(st(t0.Add(-54*time.Second)), 1, 58*time.Minute, tok, 0.5); got.Before(t0.Add(6 * time.Minute)) {
		t.Fatalf("a recorded plan no jitter could give was kept: %v", got)
	}
	if got := AppPlannedRenewal(st(t0), 1, 0, tok, 0.9); !got.Equal(tok.ExpiresAt) {
		t.Fatalf("no window: at expiry, got %v", got)
	}
}

func TestTrustHeld(t *testing.T) {
	exp := t0.Add(time.Hour + 700*time.Millisecond)
	status := &v1alpha1.ThingSpaceAppStatus{RefreshStatus: v1alpha1.RefreshStatus{ExpiresAt: mt(renewal.Truncate(exp)), LastRefreshTime: mt(t0)}}
	sec := SecretToken{AccessToken: "t", ExpiresAt: exp, Provenance: "p", Want: "p"}
	cases := []struct {
		name   string
		mutate func(*SecretToken, *v1alpha1.ThingSpaceAppStatus)
		trust  bool
	}{
		{"written by this key, expiry as the upstream said", func(*SecretToken, *v1alpha1.ThingSpaceAppStatus) {}, true},
		{"scenario 2: another key or endpoint issued it", func(s *SecretToken, _ *v1alpha1.ThingSpaceAppStatus) { s.Want = "q" }, false},
		{"no provenance (not written by this version, or planted)", func(s *SecretToken, _ *v1alpha1.ThingSpaceAppStatus) { s.Provenance, s.Want = "", "" }, false},
		{"scenario 3: expiry edited into the future", func(s *SecretToken, _ *v1alpha1.ThingSpaceAppStatus) {
			s.ExpiresAt = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
		}, false},
		{"scenario 3: expiry a second past what the upstream said", func(s *SecretToken, _ *v1alpha1.ThingSpaceAppStatus) {
			s.ExpiresAt = renewal.Truncate(exp).Add(time.Second)
		}, false},
		{"expiry edited earlier is believed (the safe side)", func(s *SecretToken, _ *v1alpha1.ThingSpaceAppStatus) { s.ExpiresAt = t0.Add(time.Minute) }, true},
		{"no expiry in status", func(_ *SecretToken, st *v1alpha1.ThingSpaceAppStatus) { st.ExpiresAt = nil }, false},
		{"status write lost after the Secret's, expiry bound to the token", func(s *SecretToken, st *v1alpha1.ThingSpaceAppStatus) {
			s.ExpiresAt = exp.Add(time.Hour)
			s.ExpiryProvenance, s.WantExpiry = "e", "e"
		}, true},
		{"status write lost, no expiry binding (an older Secret)", func(s *SecretToken, st *v1alpha1.ThingSpaceAppStatus) {
			s.ExpiresAt = exp.Add(time.Hour)
		}, false},
		{"scenario 3: expiry edited, its binding no longer matches", func(s *SecretToken, _ *v1alpha1.ThingSpaceAppStatus) {
			s.ExpiresAt = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
			s.ExpiryProvenance, s.WantExpiry = "e", "f"
		}, false},
		{"an expiry binding does not make another key's token ours", func(s *SecretToken, _ *v1alpha1.ThingSpaceAppStatus) {
			s.Want = "q"
			s.ExpiryProvenance, s.WantExpiry = "e", "e"
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, st := sec, status.DeepCopy()
			c.mutate(&s, st)
			got, why := TrustHeld(s, st)
			if (got.AccessToken != "") != c.trust || (why == "") != c.trust {
				t.Fatalf("trusted %v (%q), want %v", got.AccessToken != "", why, c.trust)
			}
			if c.trust && !got.IssuedAt.Equal(t0) {
				t.Fatalf("issued at %v", got.IssuedAt)
			}
		})
	}
	if got, why := TrustHeld(SecretToken{}, status); got.AccessToken != "" || why != "" {
		t.Fatal("no token is simply none")
	}
}

func TestAppRefreshed(t *testing.T) {
	held := AppToken{AccessToken: "t", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	in := AppInput{Generation: 1, Status: &v1alpha1.ThingSpaceAppStatus{}, Held: held, Now: held.ExpiresAt}
	// Scenario 12: the same token with expires_in 0 keeps the published expiry and retries shortly.
	same := AppToken{AccessToken: "t", IssuedAt: t0, ExpiresAt: held.ExpiresAt.Add(300 * time.Millisecond)}
	retry := held.ExpiresAt.Add(time.Second)
	if p := AppRefreshed(in, same, retry, false); !p.ExpiresAt.Equal(held.ExpiresAt) || !p.Next.Equal(retry) {
		t.Fatalf("same token, expires_in 0: %+v", p)
	}
	fresh := AppToken{AccessToken: "n", IssuedAt: held.ExpiresAt, ExpiresAt: held.ExpiresAt.Add(time.Hour)}
	if p := AppRefreshed(in, fresh, time.Time{}, false); !p.ExpiresAt.Equal(fresh.ExpiresAt) || !p.Next.Equal(fresh.ExpiresAt) {
		t.Fatalf("new token: %+v", p)
	}
	in.RenewBefore = 10 * time.Minute
	if p := AppRefreshed(in, fresh, time.Time{}, false); !p.Next.Equal(fresh.ExpiresAt.Add(-10 * time.Minute)) {
		t.Fatalf("new token with a window: %+v", p)
	}
}

func TestAppTerminal(t *testing.T) {
	tokenErr := func(status int, code string, kind upstream.Kind) error {
		return upstream.StatusError(thingspace.API, thingspace.EndpointToken, status, code, kind, 0)
	}
	revokeErr := func(status int, code string, kind upstream.Kind) error {
		return upstream.StatusError(thingspace.API, thingspace.EndpointRevoke, status, code, kind, 0)
	}
	cases := []struct {
		name   string
		err    error
		reason string
	}{
		{"token 401 invalid_client", tokenErr(401, "invalid_client", upstream.Rejected), v1alpha1.ReasonCredentialsRejected},
		{"token 401 gateway fault", tokenErr(401, "900901", upstream.Rejected), v1alpha1.ReasonCredentialsRejected},
		{"token 400 invalid_client", tokenErr(400, "invalid_client", upstream.Rejected), v1alpha1.ReasonCredentialsRejected},
		{"token 400 invalid_scope", tokenErr(400, "invalid_scope", upstream.Invalid), v1alpha1.ReasonRequestInvalid},
		{"token refused before sending", upstream.NewError(thingspace.API, thingspace.EndpointToken, 0, upstream.Invalid, "credentials cannot be encoded", nil), v1alpha1.ReasonRequestInvalid},
		{"token 403 without a code is ambiguous", tokenErr(403, "", upstream.Rejected), ""},
		{"token 400 without a code is ambiguous", tokenErr(400, "", upstream.Invalid), ""},
		{"token 404", tokenErr(404, "", upstream.Invalid), ""},
		{"token 503", tokenErr(503, "", upstream.Transient), ""},
		{"scenario 10: revoke 401 invalid_client", revokeErr(401, "invalid_client", upstream.Rejected), ""},
		{"scenario 10: revoke 403", revokeErr(403, "", upstream.Rejected), ""},
		{"scenario 10: revoke 400", revokeErr(400, "invalid_request", upstream.Invalid), ""},
		{"not an upstream error", errString("boom"), ""},
	}
	for _, c := range cases {
		reason, terminal := AppTerminal(c.err)
		if reason != c.reason || terminal != (c.reason != "") {
			t.Errorf("%s: (%q, %v), want %q", c.name, reason, terminal, c.reason)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestAppFailed(t *testing.T) {
	b := renewal.Backoff{Base: time.Second, Cap: time.Minute, Factor: 2}
	held := AppToken{AccessToken: "t", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	unavailable := upstream.StatusError(thingspace.API, thingspace.EndpointToken, 503, "", upstream.Transient, 0)
	now := t0.Add(10 * time.Minute)

	f := AppFailed(b, 1, 0, unavailable, held, false, now)
	if f.Terminal || !f.Retry.Ready || f.Reason != v1alpha1.ReasonRefreshFailing || !f.Warn {
		t.Fatalf("valid token, first failure: %+v", f)
	}
	if f = AppFailed(b, 2, 0, unavailable, held, false, now); f.Warn {
		t.Fatal("only the first failure of a series warns")
	}
	// Scenario 18: after a revoke the held token is dead, whatever its expiry.
	f = AppFailed(b, 1, 0, unavailable, held, true, now)
	if f.Retry.Ready || f.Reason != v1alpha1.ReasonUpstreamUnavailable || !strings.Contains(f.Message, "revoked") || strings.Contains(f.Message, "valid until") {
		t.Fatalf("revoked, then failed: %+v", f)
	}
	// Scenario 10: a refused revoke backs off, keeping the valid token.
	refused := upstream.StatusError(thingspace.API, thingspace.EndpointRevoke, 403, "", upstream.Rejected, 0)
	if f = AppFailed(b, 1, 0, refused, held, false, now); f.Terminal || !f.Retry.Ready || f.Retry.Delay <= 0 {
		t.Fatalf("refused revoke: %+v", f)
	}
	rejected := upstream.StatusError(thingspace.API, thingspace.EndpointToken, 401, "invalid_client", upstream.Rejected, 0)
	if f = AppFailed(b, 1, 0, rejected, held, false, now); !f.Terminal || f.Reason != v1alpha1.ReasonCredentialsRejected {
		t.Fatalf("rejected credentials: %+v", f)
	}
}
