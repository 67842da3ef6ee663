package policy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

func readyCond(status metav1.ConditionStatus, reason string, gen int64) metav1.Condition {
	return metav1.Condition{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: "m", ObservedGeneration: gen}
}

func reconcilingCond(gen int64) metav1.Condition {
	return metav1.Condition{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: "x", ObservedGeneration: gen}
}

func TestDecideProgress(t *testing.T) {
	const F, T, U = metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionUnknown
	for _, tc := range []struct {
		name           string
		gen, observed  int64
		conds          []metav1.Condition
		stalled, recon bool
		reason         string
	}{
		{name: "first pass, no verdict", gen: 1, reason: v1alpha1.ReasonPending, recon: true},
		{name: "first pass, ready", gen: 1, conds: []metav1.Condition{readyCond(T, v1alpha1.ReasonTokenValid, 1)}},
		{name: "first pass, transient failure", gen: 1, conds: []metav1.Condition{readyCond(F, v1alpha1.ReasonUpstreamUnavailable, 1)},
			recon: true, reason: v1alpha1.ReasonUpstreamUnavailable},
		{name: "first pass, unknown", gen: 1, conds: []metav1.Condition{readyCond(U, v1alpha1.ReasonPending, 1)}, recon: true, reason: v1alpha1.ReasonPending},
		{name: "still failing on the same generation", gen: 1, observed: 1,
			conds: []metav1.Condition{readyCond(F, v1alpha1.ReasonUpstreamUnavailable, 1), reconcilingCond(1)}, recon: true, reason: v1alpha1.ReasonUpstreamUnavailable},
		{name: "waiting for the credentials Secret", gen: 1, observed: 1,
			conds: []metav1.Condition{readyCond(F, v1alpha1.ReasonCredentialsNotFound, 1), reconcilingCond(1)}, recon: true, reason: v1alpha1.ReasonCredentialsNotFound},
		{name: "waiting for first consent", gen: 1, observed: 1,
			conds: []metav1.Condition{readyCond(F, v1alpha1.ReasonPending, 1), reconcilingCond(1)}, recon: true, reason: v1alpha1.ReasonPending},
		{name: "settled, then an outage: Ready alone says so", gen: 1, observed: 1,
			conds: []metav1.Condition{readyCond(F, v1alpha1.ReasonUpstreamUnavailable, 1)}},
		{name: "settled, refresh failing but valid", gen: 3, observed: 3, conds: []metav1.Condition{readyCond(T, v1alpha1.ReasonRefreshFailing, 3)}},
		{name: "terminal on first pass", gen: 1, conds: []metav1.Condition{readyCond(F, v1alpha1.ReasonCredentialsRejected, 1)},
			stalled: true, reason: v1alpha1.ReasonCredentialsRejected},
		{name: "terminal while reconciling", gen: 2, observed: 2,
			conds: []metav1.Condition{readyCond(F, v1alpha1.ReasonLoginRejected, 2), reconcilingCond(2)}, stalled: true, reason: v1alpha1.ReasonLoginRejected},
		{name: "terminal after settling", gen: 2, observed: 2, conds: []metav1.Condition{readyCond(F, v1alpha1.ReasonReauthorizationRequired, 2)},
			stalled: true, reason: v1alpha1.ReasonReauthorizationRequired},
		{name: "terminal reason on Unknown is not stalled", gen: 1, observed: 1, conds: []metav1.Condition{readyCond(U, v1alpha1.ReasonSecretConflict, 1)}},
		{name: "spec changed, ready for it", gen: 4, observed: 3, conds: []metav1.Condition{readyCond(T, v1alpha1.ReasonTokenValid, 4)}},
		{name: "spec changed, transient failure", gen: 4, observed: 3, conds: []metav1.Condition{readyCond(F, v1alpha1.ReasonUpstreamUnavailable, 4)},
			recon: true, reason: v1alpha1.ReasonUpstreamUnavailable},
		{name: "spec changed, Ready left from the old generation", gen: 4, observed: 3, conds: []metav1.Condition{readyCond(T, v1alpha1.ReasonTokenValid, 3)},
			recon: true, reason: v1alpha1.ReasonTokenValid},
		{name: "old terminal Ready does not stall a new generation", gen: 4, observed: 4, conds: []metav1.Condition{readyCond(F, v1alpha1.ReasonSecretConflict, 3)},
			recon: true, reason: v1alpha1.ReasonSecretConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DecideProgress(tc.gen, tc.observed, tc.conds)
			if p.Stalled != tc.stalled || p.Reconciling != tc.recon || p.Reason != tc.reason {
				t.Errorf("got %+v, want stalled=%v reconciling=%v reason=%q", p, tc.stalled, tc.recon, tc.reason)
			}
			if (p.Stalled || p.Reconciling) && p.Message == "" {
				t.Error("no message")
			}
		})
	}
}

// The whole life of one object: only a new generation sets Reconciling, only a terminal reason
// Stalled, and recording the same outcome twice changes nothing (the status memo writes only diffs).
func TestRecordProgress(t *testing.T) {
	now := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	var conds []metav1.Condition
	var observed int64
	pass := func(gen int64, ready *metav1.Condition) {
		t.Helper()
		if ready != nil {
			meta.SetStatusCondition(&conds, *ready)
		}
		RecordProgress(&conds, &observed, gen, now)
		now = now.Add(time.Minute)
		before, obs := slices.Clone(conds), observed
		RecordProgress(&conds, &observed, gen, now)
		if !equality.Semantic.DeepEqual(before, conds) || obs != observed {
			t.Fatalf("recording the same outcome again changed the status:\n%v\n%v", before, conds)
		}
		if observed != gen {
			t.Fatalf("observedGeneration %d, want %d", observed, gen)
		}
	}
	want := func(ready metav1.ConditionStatus, stalled, reconciling bool) {
		t.Helper()
		if c := meta.FindStatusCondition(conds, v1alpha1.ConditionReady); c == nil || c.Status != ready {
			t.Errorf("Ready %+v, want %s", c, ready)
		}
		for typ, on := range map[string]bool{v1alpha1.ConditionStalled: stalled, v1alpha1.ConditionReconciling: reconciling} {
			c := meta.FindStatusCondition(conds, typ)
			if on != (c != nil) || (c != nil && c.Status != metav1.ConditionTrue) {
				t.Errorf("%s is %+v, want present=%v (always True when present)", typ, c, on)
			}
		}
	}
	r := func(s metav1.ConditionStatus, reason string, gen int64) *metav1.Condition {
		c := readyCond(s, reason, gen)
		c.LastTransitionTime = metav1.NewTime(now)
		return &c
	}

	pass(1, nil) // the first pass ended before any verdict (an API error)
	want(metav1.ConditionUnknown, false, true)
	pass(1, r(metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable, 1))
	want(metav1.ConditionFalse, false, true)
	pass(1, r(metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 1))
	want(metav1.ConditionTrue, false, false)
	pass(1, r(metav1.ConditionTrue, v1alpha1.ReasonRefreshFailing, 1)) // a failed refresh, token still valid
	want(metav1.ConditionTrue, false, false)
	pass(1, r(metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable, 1)) // expired during an outage
	want(metav1.ConditionFalse, false, false)
	pass(2, r(metav1.ConditionFalse, v1alpha1.ReasonUpstreamUnavailable, 2)) // the spec changed meanwhile
	want(metav1.ConditionFalse, false, true)
	pass(2, r(metav1.ConditionFalse, v1alpha1.ReasonCredentialsRejected, 2))
	want(metav1.ConditionFalse, true, false)
	if c := meta.FindStatusCondition(conds, v1alpha1.ConditionStalled); c.Reason != v1alpha1.ReasonCredentialsRejected || c.Message != "m" || c.ObservedGeneration != 2 {
		t.Errorf("Stalled %+v does not carry Ready's reason and message for generation 2", c)
	}
	pass(3, r(metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 3))
	want(metav1.ConditionTrue, false, false)
}

// Every reason that waits for a person (its doc comment in api/v1alpha1 says nothing is retried or
// attempted until something changes, or a person must act) is terminal, and no reason the operator
// retries by itself is.
func TestTerminalReasonsAreTheAPIsWaitingOnes(t *testing.T) {
	docs := reasonDocs(t)
	for _, r := range TerminalReasons() {
		if _, ok := docs[r]; !ok {
			t.Errorf("terminal reason %q is not a constant in api/v1alpha1", r)
		}
	}
	retried := []string{v1alpha1.ReasonPending, v1alpha1.ReasonUpstreamUnavailable, v1alpha1.ReasonRefreshFailing,
		v1alpha1.ReasonBearerRejected, v1alpha1.ReasonPasswordNotStored, v1alpha1.ReasonGrantNotStored,
		v1alpha1.ReasonCredentialsNotFound, v1alpha1.ReasonAppNotReady, v1alpha1.ReasonAuthorizationPending,
		v1alpha1.ReasonTokenValid, v1alpha1.ReasonSessionValid, v1alpha1.ReasonGranted}
	for _, r := range retried {
		if Terminal(r) {
			t.Errorf("%q is retried by the operator (or is not a failure) but listed as terminal", r)
		}
	}
	for r, doc := range docs {
		waits := strings.Contains(doc, "nothing is retried") || strings.Contains(doc, "no login is attempted") ||
			strings.Contains(doc, "a person must") || strings.Contains(doc, "not allowed")
		if waits && !Terminal(r) {
			t.Errorf("%q waits for a person (%q) but is not terminal", r, doc)
		}
	}
}

// reasonDocs maps each Reason* constant's value in api/v1alpha1 to its lower-cased doc comment.
func reasonDocs(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "api", "v1alpha1", "*_types.go"))
	if err != nil || len(files) == 0 {
		t.Fatal(err, files)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok || len(vs.Names) != 1 || !strings.HasPrefix(vs.Names[0].Name, "Reason") || len(vs.Values) != 1 {
				return true
			}
			if lit, ok := vs.Values[0].(*ast.BasicLit); ok {
				v, _ := strconv.Unquote(lit.Value)
				out[v] = strings.ToLower(strings.Join(strings.Fields(vs.Doc.Text()), " "))
			}
			return true
		})
	}
	return out
}
