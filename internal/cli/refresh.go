package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// DefaultRefreshTimeout is how long `refresh` waits for the operator by default.
const DefaultRefreshTimeout = 60 * time.Second

// RefreshOptions are the arguments and flags of `refresh`.
type RefreshOptions struct {
	// Target is `<kind>/<name>` (see parseTarget).
	Target string
	// Wait makes Refresh wait until the operator has acted on the request, for at most Timeout.
	Wait    bool
	Timeout time.Duration
}

// consentReasons are a CloudAuthorization's Ready reasons that only a person's consent ends.
var consentReasons = map[string]bool{v1alpha1.ReasonAuthorizationPending: true, v1alpha1.ReasonReauthorizationRequired: true,
	v1alpha1.ReasonAccessDenied: true, v1alpha1.ReasonAuthorizationFailed: true, v1alpha1.ReasonCodeExchangeFailed: true}

// errNotReady marks an outcome the operator reached without a Ready object.
var errNotReady = errors.New("not Ready")

// Refresh sets the refresh-requested annotation to a new value and, with Wait, waits until the
// object's status.observedRefreshRequest holds that value (every controller records there the request
// it acted on), then reports Ready and the new expiry. It fails on timeout and when the object ends not
// Ready.
func (r *Runner) Refresh(ctx context.Context, o RefreshOptions) error {
	k, name, err := parseTarget(o.Target)
	if err != nil {
		return err
	}
	key := types.NamespacedName{Namespace: r.Namespace, Name: name}
	if k.ClusterScoped {
		key.Namespace = ""
	}
	obj := k.newObj()
	if err := r.Client.Get(ctx, key, obj); err != nil {
		return apiError(err, "get", k, key)
	}
	before, _ := RowOf(obj)
	value := RequestValue(r.Clock.Now(), obj.GetAnnotations()[v1alpha1.RefreshRequestedAnnotation], before.observedRefresh)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{v1alpha1.RefreshRequestedAnnotation: value}}})
	if err != nil {
		return err
	}
	// A merge patch of the one annotation: no resourceVersion to conflict with the operator's writes.
	if err := r.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return apiError(err, "patch", k, key)
	}
	what := fmt.Sprintf("%s %s/%s", k.Name, key.Namespace, key.Name)
	if k.ClusterScoped {
		what = k.Name + " " + key.Name
	}
	fmt.Fprintf(r.Out, "%s: refresh requested (%s=%s)\n", what, v1alpha1.RefreshRequestedAnnotation, value)
	if !o.Wait {
		return nil
	}
	row, err := r.waitObserved(ctx, k, key, value, o.Timeout)
	if err != nil {
		return err
	}
	now := r.Clock.Now()
	fmt.Fprintf(r.Out, "%s: the operator acted on the refresh: Ready=%s\n", what, ReadyCell(row))
	fmt.Fprintf(r.Out, "  expires:      %s\n  next renewal: %s\n", When(row.ExpiresAt, now), When(row.NextRenewal, now))
	if row.Ready != "True" {
		hint := ""
		if k.Name == "CloudAuthorization" && consentReasons[row.Reason] {
			hint = fmt.Sprintf("; a person must consent first: kubectl thingspace consent %s -n %s", key.Name, key.Namespace)
		}
		return fmt.Errorf("%s is %w after the refresh: %s%s", what, errNotReady, conditionText(row), hint)
	}
	return nil
}

// RequestValue is the annotation value of a new request made at now: RFC 3339 in UTC, with nanoseconds
// only when the value to the second is already the annotation's or the observed one (the operator acts
// on every new value, and only on a new one).
func RequestValue(now time.Time, current, observed string) string {
	v := now.UTC().Format(time.RFC3339)
	if v == current || v == observed {
		v = now.UTC().Format(time.RFC3339Nano)
	}
	return v
}

// waitObserved polls the object until status.observedRefreshRequest is value, and returns its row.
func (r *Runner) waitObserved(ctx context.Context, k kind, key types.NamespacedName, value string, timeout time.Duration) (Row, error) {
	poll := r.PollInterval
	if poll <= 0 {
		poll = time.Second
	}
	start := r.Clock.Now()
	deadline := start.Add(timeout)
	for {
		obj := k.newObj()
		if err := r.Client.Get(ctx, key, obj); err != nil {
			return Row{}, apiError(err, "get", k, key)
		}
		row, _ := RowOf(obj)
		if row.observedRefresh == value {
			return row, nil
		}
		left := deadline.Sub(r.Clock.Now())
		if left <= 0 {
			return Row{}, timeoutError(k, key, value, row, r.Clock.Since(start), r.Clock.Now())
		}
		select {
		case <-ctx.Done():
			return Row{}, fmt.Errorf("stopped waiting for the operator: %w", ctx.Err())
		case <-r.Clock.After(min(poll, left)):
		}
	}
}

// timeoutError says what was waited for, what status shows, and the usual reasons.
func timeoutError(k kind, key types.NamespacedName, value string, row Row, waited time.Duration, now time.Time) error {
	var b strings.Builder
	fmt.Fprintf(&b, "timed out after %s: the operator has not acted on refresh request %q of %s %s/%s (status.observedRefreshRequest is %q; %s). ",
		waited.Round(time.Second), value, k.Name, key.Namespace, key.Name, row.observedRefresh, conditionText(row))
	b.WriteString("Is the operator running? After a failure a request waits for the retry slot")
	if row.NextRenewal != nil {
		b.WriteString(" (next try " + When(row.NextRenewal, now) + ")")
	}
	b.WriteString(", and while rejected credentials are unchanged it is not acted on")
	return errors.New(b.String())
}

// conditionText is "Ready=False (Reason): message", the message cleaned and cut.
func conditionText(r Row) string {
	s := "Ready=" + ReadyCell(r)
	if r.Message != "" {
		s += ": " + truncate(clean(r.Message), 4*maxMessage)
	}
	return s
}
