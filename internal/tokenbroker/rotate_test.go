package tokenbroker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/credops/thingspace-operator/internal/thingspace"
	"github.com/credops/thingspace-operator/internal/upstream"
)

// lostRevoke is the platform whose revoke answers never arrive (a timeout or a reset after the
// request was written); apply says whether it revoked all the same.
type lostRevoke struct {
	*fakeIssuer
	apply bool
}

func (l *lostRevoke) Revoke(ctx context.Context, c thingspace.Credentials, tok string) error {
	if l.apply {
		_ = l.fakeIssuer.Revoke(ctx, c, tok)
	}
	e := upstream.TransportError(thingspace.API, thingspace.EndpointRevoke, errors.New("connection reset"))
	e.Unanswered = true
	return e
}

// Issue 14: a rotation whose revoke went unanswered may have ended the token. It asks for the next
// token at once: a new one means the revoke was applied, the same one that it was not; when that fails
// too the old token is treated as dead (the next pass fetches instead of trusting it until expiry).
func TestRotateAfterAnUnansweredRevoke(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name      string
		apply     bool
		fetchFail bool
	}{{"applied", true, false}, {"not applied", false, false}, {"applied, then the fetch fails", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			br, fi, clk, _, key := setup()
			iss := &lostRevoke{fakeIssuer: fi, apply: c.apply}
			first, _ := br.Fetch(ctx, key, a, iss, creds, "", "")
			clk.Step(50 * time.Minute)
			if c.fetchFail {
				fi.fail = upstream.StatusError(thingspace.API, thingspace.EndpointToken, 503, "", upstream.Transient, 0)
			}
			res, err := br.Rotate(ctx, key, a, iss, creds, "", first.Token.AccessToken, "renewBefore")
			_, recorded := br.RevokedBy(key, first.Token.AccessToken)
			cur, valid := br.Current(key)
			switch {
			case c.fetchFail:
				if err == nil || !res.Revoked || valid {
					t.Fatalf("err %v, revoked %v, broker still holds %v", err, res.Revoked, cur.AccessToken)
				}
			case c.apply:
				if err != nil || !res.Revoked || res.Token.AccessToken == first.Token.AccessToken || !recorded {
					t.Fatalf("%+v %v (recorded %v)", res, err, recorded)
				}
			default:
				if err != nil || res.Revoked || res.Token.AccessToken != first.Token.AccessToken || res.RetryAt.IsZero() || recorded || !valid {
					t.Fatalf("%+v %v (recorded %v)", res, err, recorded)
				}
			}
			if fi.tokens != 2 {
				t.Fatalf("%d token calls, want the first and one right after the revoke", fi.tokens)
			}
		})
	}
}
