package tokenbroker

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// The set behaves the same below and above maxFew holders: no duplicates, removal, except.
func TestHolderSetAcrossItsTwoForms(t *testing.T) {
	for _, n := range []int{1, maxFew, maxFew + 5} {
		var h holderSet
		var all []types.NamespacedName
		for i := range n {
			who := types.NamespacedName{Namespace: "ns", Name: strconv.Itoa(i)}
			all = append(all, who)
			h.add(who)
			h.add(who) // twice: still one
		}
		if h.len() != n {
			t.Fatalf("%d holders added twice each: len %d", n, h.len())
		}
		if (h.many != nil) != (n > maxFew) {
			t.Errorf("%d holders: map %v", n, h.many != nil)
		}
		others := h.except(all[0])
		slices.SortFunc(others, func(a, b types.NamespacedName) int { return cmpName(a, b) })
		want := slices.Clone(all[1:])
		slices.SortFunc(want, func(a, b types.NamespacedName) int { return cmpName(a, b) })
		if !slices.Equal(others, want) {
			t.Errorf("%d holders: except the first %v, want %v", n, others, want)
		}
		for _, who := range all {
			h.remove(who)
		}
		if h.len() != 0 || h.except(types.NamespacedName{}) != nil {
			t.Errorf("%d holders all removed: len %d", n, h.len())
		}
	}
}

func cmpName(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) }
