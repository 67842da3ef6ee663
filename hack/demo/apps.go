package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// appView is what the narrator last saw of one ThingSpaceApp and its Secret.
type appView struct {
	name        string
	ready       string    // "True (TokenValid)"
	token       string    // fingerprint
	tokenAt     time.Time // when this token was first seen in the Secret
	expiresAt   time.Time
	tokens      int       // distinct tokens seen
	rotations   int       // automatic rotations seen
	rotatedAt   time.Time // when the first automatic rotation was seen
	manualValue string
	manualAt    time.Time
	manualDone  bool
}

// observeApp narrates one ThingSpaceApp: its Ready changes, the token Secret being written, each
// rotation and the manual refresh, which it asks for once the first rotation has been seen.
func (n *narrator) observeApp(ctx context.Context, v *appView) error {
	app := &v1alpha1.ThingSpaceApp{}
	if err := n.c.Get(ctx, types.NamespacedName{Namespace: n.ns, Name: v.name}, app); err != nil {
		return err
	}
	narrateCondition(v.name, v1alpha1.ConditionReady, app.Status.Conditions, &v.ready)

	s, err := n.secret(ctx, app.Spec.SecretName)
	if s == nil {
		return err
	}
	tok := string(s.Data[v1alpha1.SecretKeyAccessToken])
	if tok == "" {
		return nil
	}
	fp := fingerprint(tok)
	if fp != v.token {
		now := time.Now()
		prevExpiry := v.expiresAt
		v.token, v.tokenAt = fp, now
		v.tokens++
		v.expiresAt, _ = time.Parse(time.RFC3339, string(s.Data[v1alpha1.SecretKeyExpiresAt]))
		requests, revokes := n.counts()
		switch {
		case v.tokens == 1:
			step("%s: the operator wrote Secret %s/%s", v.name, n.ns, s.Name)
			indent("data keys: %s (token_type %s)", strings.Join(sortedKeys(s.Data), ", "), s.Data[v1alpha1.SecretKeyTokenType])
			indent("labels: %s; controlled by ThingSpaceApp %s", formatLabels(s.Labels), controller(s))
			indent("access_token: %s (fingerprint; the token itself is never printed)", fp)
			indent("expires_at:   %s (%s)", s.Data[v1alpha1.SecretKeyExpiresAt], until(v.expiresAt))
			indent("token requests to ThingSpace so far: %d", requests)
		case v.manualValue != "" && !v.manualDone:
			v.manualDone = true
			step("%s: manual refresh done %s after the request: old token revoked, new one issued", v.name, now.Sub(v.manualAt).Round(time.Millisecond))
			indent("access_token: %s, expires_at %s (%s)", fp, s.Data[v1alpha1.SecretKeyExpiresAt], until(v.expiresAt))
			indent("token requests so far: %d, revokes: %d", requests, revokes)
		default:
			v.rotations++
			if v.rotations == 1 {
				v.rotatedAt = now
			}
			step("%s: rotated at %s: the old token expired at %s", v.name, now.UTC().Format("15:04:05.000Z"), prevExpiry.UTC().Format("15:04:05.000Z"))
			indent("new access_token: %s, expires_at %s (%s)", fp, s.Data[v1alpha1.SecretKeyExpiresAt], until(v.expiresAt))
			indent("token requests so far: %d (renewBefore is unset: ThingSpace hands out the same token until it expires)", requests)
		}
		n.appTable(ctx)
		if v.rotations == 1 && v.manualValue == "" {
			indent("next: a manual refresh in %s, through the annotation %s", n.manualDelay(), v1alpha1.RefreshRequestedAnnotation)
		} else {
			indent("next: automatic rotation when this token expires, %s", until(v.expiresAt))
		}
	}

	if v.rotations >= 1 && v.manualValue == "" && time.Since(v.rotatedAt) >= n.manualDelay() {
		if err := n.requestRefresh(ctx, app, v); err != nil {
			return err
		}
	}
	return nil
}

// manualDelay is how long after the first rotation the manual refresh is asked for: well before the
// next automatic one.
func (n *narrator) manualDelay() time.Duration { return min(manualDelay, n.lifetime/4) }

func (n *narrator) requestRefresh(ctx context.Context, app *v1alpha1.ThingSpaceApp, v *appView) error {
	value := time.Now().UTC().Format(time.RFC3339)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.RefreshRequestedAnnotation, value)
	if err := n.c.Patch(ctx, app, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		return fmt.Errorf("annotate %s: %w", v.name, err)
	}
	v.manualValue, v.manualAt = value, time.Now()
	fmt.Println()
	step("%s: asking for a manual refresh, as", v.name)
	indent("kubectl annotate tsapp %s -n %s %s=%s --overwrite", v.name, n.ns, v1alpha1.RefreshRequestedAnnotation, value)
	return nil
}

// counts returns the simulator's token and revoke request counts; when it cannot be asked (it has
// gone with Ctrl-C, say), the last ones it gave.
func (n *narrator) counts() (requests, revokes int) {
	if r, err := n.sim.TokenRequests(); err == nil {
		n.requests = r
	}
	if r, err := n.sim.RevokeRequests(); err == nil {
		n.revokes = r
	}
	return n.requests, n.revokes
}

// appTable prints the ThingSpaceApps of the namespace as `kubectl get tsapp` lays them out, with
// Expires shown as the time left.
func (n *narrator) appTable(ctx context.Context) {
	list := &v1alpha1.ThingSpaceAppList{}
	if err := n.c.List(ctx, list, client.InNamespace(n.ns)); err != nil {
		return
	}
	rows := make([][]string, 0, len(list.Items))
	for _, a := range list.Items {
		rows = append(rows, []string{a.Name, conditionStatus(a.Status.Conditions, v1alpha1.ConditionReady), a.Spec.SecretName,
			untilPtr(a.Status.ExpiresAt), age(a.CreationTimestamp)})
	}
	n.printTable("tsapp", []string{"NAME", "READY", "SECRET", "EXPIRES", "AGE"}, rows)
}

// appSummary prints what was seen of the ThingSpaceApps and returns the steps that fitted in
// --duration but did not happen.
func (n *narrator) appSummary(o options) (missing []string) {
	requests, revokes := n.counts()
	for _, name := range n.order {
		v := n.apps[name]
		manual := "no manual refresh"
		if v.manualDone {
			manual = "1 manual refresh"
		}
		indent("%s: %s written, %s, %s; Ready=%s", name, plural(v.tokens, "token"), plural(v.rotations, "automatic rotation"), manual, v.ready)
		if o.duration == 0 {
			continue
		}
		// Start-up to the first token takes a second or two; a rotation comes a lifetime later and the
		// manual refresh manualDelay after it.
		if v.tokens == 0 {
			missing = append(missing, name+": no token was written")
		}
		if o.duration >= o.lifetime+10*time.Second && v.rotations == 0 {
			missing = append(missing, name+": no automatic rotation")
		}
		if o.duration >= o.lifetime+manualDelay+10*time.Second && !v.manualDone {
			missing = append(missing, name+": the manual refresh did not happen")
		}
	}
	indent("token requests to ThingSpace: %d, revokes: %d", requests, revokes)
	return missing
}
