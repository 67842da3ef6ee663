package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// cloudView is what the narrator last saw of one CloudAuthorization and its Secret, and what the person
// did.
type cloudView struct {
	name              string
	authorized, ready string // "True (Granted)"
	url               string // the last authorization URL seen
	declined          bool   // the person refused consent once
	consented         bool   // then consented
	accessDenied      bool   // Authorized=False AccessDenied was seen
	// The Secret: fingerprints of its tokens, the access token itself (kept to show that the old one
	// still works after a refresh; never printed) and its expiry.
	access, refresh string
	accessToken     string
	issuedAt        time.Time // the Secret's refreshed-at
	expiresAt       time.Time
	tabled          bool // the `kubectl get cloudauth` table was shown (once Authorized after the consent)
	tokens          int  // distinct access tokens seen
	refreshes       int  // refreshes seen, each ahead of the old token's expiry
	late            int  // refreshes seen after the old token had expired
	events          map[string]int32
	refreshedEvents int
}

// observeCloud narrates one CloudAuthorization: its conditions, the authorization URL, the person
// declining once and then consenting, the Secret the callback writes, each refresh ahead of expiry and
// the Events about it.
func (n *narrator) observeCloud(ctx context.Context, v *cloudView) error {
	ca := &v1alpha1.CloudAuthorization{}
	if err := n.c.Get(ctx, types.NamespacedName{Namespace: n.ns, Name: v.name}, ca); err != nil {
		return err
	}
	narrateCondition(v.name, v1alpha1.ConditionAuthorized, ca.Status.Conditions, &v.authorized)
	narrateCondition(v.name, v1alpha1.ConditionReady, ca.Status.Conditions, &v.ready)
	if strings.HasSuffix(v.authorized, "("+v1alpha1.ReasonAccessDenied+")") {
		v.accessDenied = true
	}
	if !v.tabled && v.tokens > 0 && strings.HasPrefix(v.authorized, "True") && ca.Status.RenewalTime != nil {
		v.tabled = true
		n.cloudTable(ctx)
		indent("next: a refresh at about two thirds of the access token's life (up to 10%% earlier, by jitter), well before it expires: status.renewalTime %s, %s",
			ca.Status.RenewalTime.UTC().Format("15:04:05Z"), until(ca.Status.RenewalTime.Time))
	}
	if err := n.cloudSecret(ctx, ca, v); err != nil {
		return err
	}
	if err := n.cloudEvents(ctx, v); err != nil {
		return err
	}
	if ca.Status.ConsentStateHash != "" && (!v.declined || !v.consented) {
		u, err := harness.ConsentLink(ctx, n.c, types.NamespacedName{Namespace: n.ns, Name: v.name})
		if err != nil {
			return err
		}
		if u != "" && u != v.url {
			v.url = u
			return n.playPerson(ctx, ca, v)
		}
	}
	return nil
}

// cloudSecret narrates the Secrets of a CloudAuthorization: the grant the callback stored (in
// `<name>-grant`), the access token published to the workload's Secret, then each refresh.
func (n *narrator) cloudSecret(ctx context.Context, ca *v1alpha1.CloudAuthorization, v *cloudView) error {
	s, err := n.secret(ctx, v1alpha1.GrantSecretName(ca))
	if s == nil {
		return err
	}
	w, err := n.secret(ctx, ca.Spec.SecretName)
	if w == nil || string(w.Data[v1alpha1.SecretKeyAccessToken]) != string(s.Data[v1alpha1.SecretKeyAccessToken]) {
		return err // not published yet: look again on the next tick
	}
	access, refresh := string(s.Data[v1alpha1.SecretKeyAccessToken]), string(s.Data[v1alpha1.SecretKeyRefreshToken])
	if access == "" || fingerprint(access) == v.access {
		return nil
	}
	prev := *v
	v.access, v.refresh, v.accessToken = fingerprint(access), fingerprint(refresh), access
	v.expiresAt, _ = time.Parse(time.RFC3339, string(s.Data[v1alpha1.SecretKeyExpiresAt]))
	v.issuedAt, _ = time.Parse(time.RFC3339Nano, s.Annotations[v1alpha1.RefreshedAtAnnotation])
	v.tokens++
	stats := n.cloudStats()
	if v.tokens == 1 {
		step("%s: the callback stored the grant in Secret %s/%s; the operator published the access token to %s", v.name, n.ns, s.Name, w.Name)
		indent("%s (workloads mount it): %s (token_type %s); controlled by CloudAuthorization %s", w.Name, strings.Join(sortedKeys(w.Data), ", "),
			w.Data[v1alpha1.SecretKeyTokenType], controller(w))
		indent("%s (the operator's, never mounted): %s", s.Name, strings.Join(sortedKeys(s.Data), ", "))
		indent("access_token:  %d bytes, %s (workloads read this one)", len(access), v.access)
		indent("refresh_token: %d bytes, %s (the operator's: a workload that refreshes rotates it away)", len(refresh), v.refresh)
		indent("expires_at:    %s (%s)", s.Data[v1alpha1.SecretKeyExpiresAt], until(v.expiresAt))
		indent("Verizon Cloud so far: %s", stats)
		return nil
	}
	refreshedAt := v.issuedAt
	if refreshedAt.IsZero() {
		refreshedAt = time.Now()
	}
	left := prev.expiresAt.Sub(refreshedAt)
	if left > 0 {
		v.refreshes++
	} else {
		v.late++
	}
	life := prev.expiresAt.Sub(prev.issuedAt)
	step("%s: refreshed at %s, %.0f%% into the old access token's %s life: %s before it expired", v.name,
		refreshedAt.UTC().Format("15:04:05.000Z"), 100*float64(refreshedAt.Sub(prev.issuedAt))/float64(life),
		life.Round(time.Second), left.Round(100*time.Millisecond))
	indent("access_token:  %s → %s, expires_at %s (%s)", prev.access, v.access, s.Data[v1alpha1.SecretKeyExpiresAt], until(v.expiresAt))
	indent("refresh_token: %s → %s: rotated, the old one is dead at Verizon now", prev.refresh, v.refresh)
	if v.refreshes+v.late == 1 {
		if ok, err := n.sim.CloudAccountOK(ctx, prev.accessToken); err == nil {
			indent("the old access token still works until it expires (GET /cloud/1/account with it: %s): workloads have a third of its life to reread the Secret",
				map[bool]string{true: "200", false: "401"}[ok])
		}
	}
	indent("Verizon Cloud so far: %s", stats)
	return nil
}

// playPerson opens the authorization URL as the person would: the first time they decline, the next
// time they consent.
func (n *narrator) playPerson(ctx context.Context, ca *v1alpha1.CloudAuthorization, v *cloudView) error {
	fmt.Println()
	step("%s: consent needed; the link is in Secret %s (status.consentSecretName; valid until %s, single use):", v.name,
		ca.Status.ConsentSecretName, ca.Status.ConsentExpiresAt.UTC().Format(time.RFC3339))
	indent("%s", v.url)
	indent("(kubectl thingspace consent %s -n %s: needs get on that Secret; viewers cannot read it)", v.name, n.ns)
	indent("the link starts at the operator, which binds this browser with a cookie and sends it on to Verizon")
	deny := !v.declined
	if deny {
		step("the person opens it in a browser and declines (the simulator's consent page is told to refuse)")
		if err := n.sim.SetCloudDenyConsent(true); err != nil {
			return err
		}
		defer func() { _ = n.sim.SetCloudDenyConsent(false) }()
	} else {
		step("the person opens the new link (in the same browser: the start endpoint binds it with a cookie) and consents")
	}
	visit, err := n.person.Open(ctx, v.url)
	if err != nil {
		return err
	}
	if deny {
		v.declined = true
	} else {
		v.consented = true
	}
	indent("browser: consent page → 302 → %s", visit.Redacted())
	indent("page (HTTP %d): %q — %s", visit.Status, visit.Title, visit.Detail)
	return nil
}

// cloudEvents prints the Events about v that are new since the last look (Normal Authorized and
// Refreshed, Warning AccessDenied…), oldest first.
func (n *narrator) cloudEvents(ctx context.Context, v *cloudView) error {
	list := &eventsv1.EventList{}
	if err := n.c.List(ctx, list, client.InNamespace(n.ns)); err != nil {
		return err
	}
	evs := slices.DeleteFunc(list.Items, func(e eventsv1.Event) bool {
		return e.Regarding.Kind != "CloudAuthorization" || e.Regarding.Name != v.name
	})
	slices.SortFunc(evs, func(a, b eventsv1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	if v.events == nil {
		v.events = map[string]int32{}
	}
	for _, e := range evs {
		count := int32(1)
		if e.Series != nil {
			count = e.Series.Count
		}
		if v.events[e.Name] >= count {
			continue
		}
		v.events[e.Name] = count
		if e.Reason == v1alpha1.EventRefreshed {
			v.refreshedEvents++
		}
		step("%s: Event %s %s: %s", v.name, e.Type, e.Reason, e.Note)
	}
	return nil
}

// cloudStats describes the simulator's Verizon Cloud counts.
func (n *narrator) cloudStats() string {
	st, err := n.sim.CloudStats()
	if err != nil {
		return "(the simulator did not answer)"
	}
	return fmt.Sprintf("consents refused %d, codes exchanged %d, refreshes %d, refresh-token reuses %d, invalid grants %d",
		st.Denials, st.CodeExchanges, st.Refreshes, st.RefreshTokenReuses, st.InvalidGrants)
}

// cloudTable prints the CloudAuthorizations of the namespace as `kubectl get cloudauth` lays them out,
// with Expires shown as the time left.
func (n *narrator) cloudTable(ctx context.Context) {
	list := &v1alpha1.CloudAuthorizationList{}
	if err := n.c.List(ctx, list, client.InNamespace(n.ns)); err != nil {
		return
	}
	rows := make([][]string, 0, len(list.Items))
	for _, ca := range list.Items {
		rows = append(rows, []string{ca.Name, conditionStatus(ca.Status.Conditions, v1alpha1.ConditionAuthorized),
			conditionStatus(ca.Status.Conditions, v1alpha1.ConditionReady), untilPtr(ca.Status.ExpiresAt), age(ca.CreationTimestamp)})
	}
	n.printTable("cloudauth", []string{"NAME", "AUTHORIZED", "READY", "EXPIRES", "AGE"}, rows)
}

// cloudSummary prints what was seen of the CloudAuthorizations and returns the steps that fitted in
// --duration but did not happen.
func (n *narrator) cloudSummary(o options) (missing []string) {
	for _, name := range n.cloudOrder {
		v := n.clouds[name]
		story := "no consent"
		switch {
		case v.declined && v.consented:
			story = "declined once, then consented"
		case v.declined:
			story = "declined, never consented"
		}
		indent("%s: %s (AccessDenied seen: %v); %d refreshes ahead of expiry, %d late; %d Refreshed events; Authorized=%s, Ready=%s",
			name, story, v.accessDenied, v.refreshes, v.late, v.refreshedEvents, v.authorized, v.ready)
		if o.duration == 0 {
			continue
		}
		// The consent takes a second or two after start-up; the first refresh comes at about two
		// thirds of a lifetime after it.
		if !v.accessDenied {
			missing = append(missing, name+": the refused consent did not give AccessDenied")
		}
		if v.tokens == 0 {
			missing = append(missing, name+": no tokens were stored after the consent")
		}
		if o.duration >= o.lifetime+10*time.Second && (v.refreshes == 0 || v.refreshedEvents == 0) {
			missing = append(missing, name+": no refresh ahead of expiry with its Refreshed event")
		}
		if v.late > 0 {
			missing = append(missing, name+": a refresh came after the access token had expired")
		}
	}
	if len(n.cloudOrder) > 0 {
		indent("Verizon Cloud: %s", n.cloudStats())
	}
	return missing
}
