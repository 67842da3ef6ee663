package gitops

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/policy"
	"github.com/credops/thingspace-operator/test/argocd"
	"github.com/credops/thingspace-operator/test/harness"
)

// readyReasons are the Ready reasons each kind's controllers write, with Ready's status.
var readyReasons = map[string]map[string]metav1.ConditionStatus{
	kindApp: {
		v1alpha1.ReasonTokenValid: metav1.ConditionTrue, v1alpha1.ReasonRefreshFailing: metav1.ConditionTrue,
		v1alpha1.ReasonPending: metav1.ConditionUnknown, v1alpha1.ReasonUpstreamUnavailable: metav1.ConditionFalse,
		v1alpha1.ReasonCredentialsNotFound: metav1.ConditionFalse, v1alpha1.ReasonCredentialsRejected: metav1.ConditionFalse,
		v1alpha1.ReasonRequestInvalid: metav1.ConditionFalse, v1alpha1.ReasonSecretConflict: metav1.ConditionFalse,
		v1alpha1.ReasonInvalidEndpoint: metav1.ConditionFalse, v1alpha1.ReasonEndpointNotAllowed: metav1.ConditionFalse,
		v1alpha1.ReasonNotAllowed: metav1.ConditionFalse,
	},
	kindSession: {
		v1alpha1.ReasonSessionValid: metav1.ConditionTrue, v1alpha1.ReasonPending: metav1.ConditionUnknown,
		v1alpha1.ReasonAppNotReady: metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable: metav1.ConditionFalse,
		v1alpha1.ReasonBearerRejected: metav1.ConditionFalse, v1alpha1.ReasonPasswordNotStored: metav1.ConditionFalse,
		v1alpha1.ReasonCredentialsNotFound: metav1.ConditionFalse, v1alpha1.ReasonLoginRejected: metav1.ConditionFalse,
		v1alpha1.ReasonInvalidCredentials: metav1.ConditionFalse, v1alpha1.ReasonPasswordLost: metav1.ConditionFalse,
		v1alpha1.ReasonSecretConflict: metav1.ConditionFalse, v1alpha1.ReasonInvalidEndpoint: metav1.ConditionFalse,
		v1alpha1.ReasonEndpointNotAllowed: metav1.ConditionFalse, v1alpha1.ReasonNotAllowed: metav1.ConditionFalse,
	},
	kindCloud: {
		v1alpha1.ReasonTokenValid: metav1.ConditionTrue, v1alpha1.ReasonRefreshFailing: metav1.ConditionTrue,
		v1alpha1.ReasonPending: metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable: metav1.ConditionFalse,
		v1alpha1.ReasonGrantNotStored: metav1.ConditionFalse, v1alpha1.ReasonCredentialsNotFound: metav1.ConditionFalse,
		v1alpha1.ReasonCredentialsRejected: metav1.ConditionFalse, v1alpha1.ReasonSecretConflict: metav1.ConditionFalse,
		v1alpha1.ReasonInvalidEndpoint: metav1.ConditionFalse, v1alpha1.ReasonEndpointNotAllowed: metav1.ConditionFalse,
		v1alpha1.ReasonAccessDenied: metav1.ConditionFalse, v1alpha1.ReasonAuthorizationFailed: metav1.ConditionFalse,
		v1alpha1.ReasonCodeExchangeFailed: metav1.ConditionFalse, v1alpha1.ReasonReauthorizationRequired: metav1.ConditionFalse,
	},
}

// kstatusFor is the kstatus verdict that matches an Argo CD health.
var kstatusFor = map[string]status.Status{
	"Healthy": status.CurrentStatus, "Degraded": status.FailedStatus,
	"Progressing": status.InProgressStatus, "Suspended": status.InProgressStatus,
}

// Argo CD's health checks and kstatus agree on every state a controller can record: for each kind,
// each Ready reason it writes, on a generation's first pass, once settled, and with a newer spec not
// observed yet, the statuses policy.RecordProgress makes are Healthy exactly when kstatus says Current,
// Degraded exactly when Failed, and Progressing or Suspended exactly when InProgress.
func TestArgoCDAndKstatusAgree(t *testing.T) {
	root, err := harness.RepoRoot()
	must(t, err)
	now := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	// A cluster-scoped kind records the namespaced kind's reasons, through the same function.
	kinds := map[string]string{"ClusterThingSpaceApp": kindApp, "ClusterM2MSession": kindSession}
	for _, k := range argocd.Kinds {
		if _, ok := readyReasons[k]; ok {
			kinds[k] = k
		} else if _, ok := kinds[k]; !ok {
			t.Errorf("Argo CD has a health check for %s, and this test no reasons for it", k)
		}
	}
	seen := map[string]bool{}
	for kind, like := range kinds {
		reasons := readyReasons[like]
		script, err := os.ReadFile(filepath.Join(root, argocd.KindDir(kind), "health.lua"))
		if os.IsNotExist(err) {
			continue // no health check (yet): nothing to agree with
		}
		must(t, err)
		for reason, ready := range reasons {
			for _, h := range []struct {
				name             string
				gen, observedPre int64
				bumped           bool
			}{{"first pass", 1, 0, false}, {"settled", 3, 3, false}, {"spec changed since", 3, 3, true}} {
				conds := []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: ready, Reason: reason, Message: "m",
					ObservedGeneration: h.gen, LastTransitionTime: metav1.NewTime(now)}}
				st := map[string]any{}
				if kind == kindCloud {
					a := cloudAuthorized(reason, h.gen, now)
					conds = append(conds, a)
					if a.Status == metav1.ConditionFalse && a.Reason != v1alpha1.ReasonGrantNotStored {
						st["consentStateHash"] = "0123abcd" // a consent is live
					}
				}
				observed := h.observedPre
				policy.RecordProgress(&conds, &observed, h.gen, now)
				st["observedGeneration"] = observed
				st["conditions"] = conds
				gen := h.gen
				if h.bumped {
					gen++
				}
				obj, u := objectOf(t, kind, gen, st)
				health, err := argocd.Evaluate(string(script), obj)
				must(t, err)
				res, err := status.Compute(u)
				must(t, err)
				seen[health.Status] = true
				if want, ok := kstatusFor[health.Status]; !ok || res.Status != want {
					t.Errorf("%s %s (%s, %s): Argo CD says %s (%q), kstatus %s (%q)", kind, reason, ready, h.name,
						health.Status, health.Message, res.Status, res.Message)
				}
			}
		}
	}
	for h := range kstatusFor {
		if !seen[h] {
			t.Errorf("no case came out %s: the table no longer covers it", h)
		}
	}
}

// cloudAuthorized is the Authorized condition a CloudAuthorization carries with that Ready reason.
func cloudAuthorized(readyReason string, gen int64, now time.Time) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionAuthorized, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonGranted,
		Message: "m", ObservedGeneration: gen, LastTransitionTime: metav1.NewTime(now)}
	switch readyReason {
	case v1alpha1.ReasonPending:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonAuthorizationPending
	case v1alpha1.ReasonGrantNotStored, v1alpha1.ReasonAccessDenied, v1alpha1.ReasonAuthorizationFailed,
		v1alpha1.ReasonCodeExchangeFailed, v1alpha1.ReasonReauthorizationRequired:
		c.Status, c.Reason = metav1.ConditionFalse, readyReason
	}
	return c
}

// objectOf is kind's object with generation gen and status st, decoded from JSON as Argo CD decodes it
// (numbers as float64) and as the API machinery does (integers as int64), for kstatus.
func objectOf(t *testing.T, kind string, gen int64, st map[string]any) (map[string]any, *unstructured.Unstructured) {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": kind,
		"metadata": map[string]any{"name": "x", "namespace": "y", "generation": gen},
		"spec":     map[string]any{}, "status": st,
	})
	must(t, err)
	obj := map[string]any{}
	must(t, json.Unmarshal(b, &obj))
	u := &unstructured.Unstructured{}
	must(t, u.UnmarshalJSON(b))
	return obj, u
}
