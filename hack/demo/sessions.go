package main

import (
	"context"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// sessionView is what the narrator last saw of one M2MSession and its Secret.
type sessionView struct {
	name        string
	ready       string
	session     string // fingerprint of session_token
	sessions    int    // distinct sessions seen
	accessToken string // fingerprint of access_token
	follows     int    // changes of access_token after the first that matched the app's token
	lastKA      time.Time
	keepAlives  int  // keep-alives seen in the status
	tabled      bool // the `kubectl get m2m` table was shown (once the first session is Ready)
}

// observeSession narrates one M2MSession: its Ready changes, the session Secret being written, a new
// session (a re-login), each keep-alive, and access_token following the app's token.
func (n *narrator) observeSession(ctx context.Context, v *sessionView) error {
	sess := &v1alpha1.M2MSession{}
	if err := n.c.Get(ctx, types.NamespacedName{Namespace: n.ns, Name: v.name}, sess); err != nil {
		return err
	}
	narrateCondition(v.name, v1alpha1.ConditionReady, sess.Status.Conditions, &v.ready)
	app := n.apps[sess.Spec.AppRef.Name]

	s, err := n.secret(ctx, sess.Spec.SecretName)
	if s == nil {
		return err
	}
	session, access := string(s.Data[v1alpha1.SecretKeySessionToken]), string(s.Data[v1alpha1.SecretKeyAccessToken])
	if session == "" || access == "" {
		return nil
	}
	now := time.Now()
	sfp, afp := fingerprint(session), fingerprint(access)
	if sfp != v.session {
		v.session = sfp
		v.sessions++
		logins, keepAlives := n.m2mCounts()
		if v.sessions == 1 {
			step("%s: logged in as %s; the operator wrote Secret %s/%s", v.name, demoUWSUser, n.ns, s.Name)
			indent("data keys: %s; controlled by M2MSession %s", strings.Join(sortedKeys(s.Data), ", "), controller(s))
			indent("session_token: %s (the VZ-M2M-Token header; fingerprint, never the token)", sfp)
			indent("access_token:  %s (the Authorization: Bearer header: ThingSpaceApp %s's current token, %s)", afp,
				sess.Spec.AppRef.Name, sameAs(app, afp))
			indent("access_token_expires_at: %s", s.Data[v1alpha1.SecretKeyAccessTokenExpiresAt])
			indent("logins to ThingSpace so far: %d; next: a keep-alive (account %s) every %s, so that this one login lasts",
				logins, sess.Spec.KeepAlive.AccountName, n.keepAlive)
		} else {
			step("%s: a new session in the Secret: %s (login #%d; keep-alives so far %d)", v.name, sfp, logins, keepAlives)
		}
	}
	if afp != v.accessToken {
		if v.accessToken != "" {
			if app != nil && app.token == afp {
				v.follows++
				lag := "within " + pollInterval.String() + " of the app's Secret changing (seen in the same look)"
				if d := now.Sub(app.tokenAt); d >= pollInterval {
					lag = d.Round(time.Millisecond).String() + " after the app's Secret changed"
				}
				step("%s: access_token followed ThingSpaceApp %s's new token: %s → %s, %s; same session %s",
					v.name, app.name, v.accessToken, afp, lag, sfp)
				indent("access_token_expires_at: %s", s.Data[v1alpha1.SecretKeyAccessTokenExpiresAt])
			} else {
				step("%s: access_token is now %s (%s)", v.name, afp, sameAs(app, afp))
			}
		}
		v.accessToken = afp
	}
	if ka := sess.Status.LastKeepAliveTime; ka != nil && !ka.Time.Equal(v.lastKA) {
		v.lastKA = ka.Time
		v.keepAlives++
		logins, keepAlives := n.m2mCounts()
		next := "unknown"
		if t := sess.Status.NextKeepAliveTime; t != nil {
			next = until(t.Time)
		}
		step("%s: keep-alive at %s: account read with session %s; logins so far %d, keep-alives %d; next %s",
			v.name, ka.UTC().Format("15:04:05Z"), sfp, logins, keepAlives, next)
	}
	if !v.tabled && v.sessions > 0 && strings.HasPrefix(v.ready, "True") {
		v.tabled = true
		n.sessionTable(ctx)
	}
	return nil
}

// sameAs says whether fp is the app's current token as last seen.
func sameAs(app *appView, fp string) string {
	switch {
	case app == nil:
		return "app not watched"
	case app.token == fp:
		return "the same as in " + app.name + "'s Secret"
	default:
		return "not the token last seen in " + app.name + "'s Secret"
	}
}

// m2mCounts returns the simulator's login and keep-alive (account read) counts; 0 when it cannot be
// asked.
func (n *narrator) m2mCounts() (logins, keepAlives int) {
	logins, _ = n.sim.Total(harness.RouteM2MLogin)
	keepAlives, _ = n.sim.Total(harness.RouteM2MAccount)
	return logins, keepAlives
}

// sessionTable prints the M2MSessions of the namespace as `kubectl get m2m` lays them out.
func (n *narrator) sessionTable(ctx context.Context) {
	list := &v1alpha1.M2MSessionList{}
	if err := n.c.List(ctx, list, client.InNamespace(n.ns)); err != nil {
		return
	}
	rows := make([][]string, 0, len(list.Items))
	for _, s := range list.Items {
		login := "<none>"
		if s.Status.LastLoginTime != nil {
			login = age(*s.Status.LastLoginTime)
		}
		rows = append(rows, []string{s.Name, conditionStatus(s.Status.Conditions, v1alpha1.ConditionReady), s.Spec.SecretName,
			login, age(s.CreationTimestamp)})
	}
	n.printTable("m2m", []string{"NAME", "READY", "SECRET", "LAST LOGIN", "AGE"}, rows)
}

// sessionSummary prints what was seen of the M2MSessions and returns the steps that fitted in
// --duration but did not happen.
func (n *narrator) sessionSummary(o options) (missing []string) {
	for _, name := range n.sessionOrder {
		v := n.sessions[name]
		indent("%s: %s, %s seen, access_token followed the app's token %s; Ready=%s", name, plural(v.sessions, "session"),
			plural(v.keepAlives, "keep-alive"), plural(v.follows, "time"), v.ready)
		if o.duration == 0 {
			continue
		}
		if v.sessions == 0 {
			missing = append(missing, name+": no session was written")
		}
		if o.duration >= o.keepAlive+10*time.Second && v.keepAlives == 0 {
			missing = append(missing, name+": no keep-alive")
		}
		if o.duration >= o.lifetime+10*time.Second && v.follows == 0 {
			missing = append(missing, name+": access_token did not follow an app token change")
		}
	}
	if len(n.sessionOrder) > 0 {
		logins, keepAlives := n.m2mCounts()
		indent("UWS logins to ThingSpace: %d, keep-alives: %d", logins, keepAlives)
	}
	return missing
}
