package intern

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"
)

func same(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// Two copies of a string come back as one; an unknown string past the bound comes back as it is.
func TestTableSharesCopiesUpToItsSize(t *testing.T) {
	tab := &Table{Size: 2}
	a1, a2 := strings.Clone("bench-apps"), strings.Clone("bench-apps")
	if same(a1, a2) {
		t.Fatal("the test needs two copies")
	}
	if got := tab.String(a1); !same(got, a1) {
		t.Fatal("the first copy is the shared one")
	}
	if got := tab.String(a2); !same(got, a1) || got != "bench-apps" {
		t.Fatalf("second copy not shared: %q", got)
	}
	tab.String("b")
	c := strings.Clone("c")
	if got := tab.String(c); !same(got, c) || tab.Len() != 2 {
		t.Fatalf("past the bound: got %q, %d held", got, tab.Len())
	}
	if tab.String("") != "" {
		t.Fatal("empty string")
	}
}

func TestLabelsAndKeysShareInPlace(t *testing.T) {
	tab := &Table{}
	k, v := strings.Clone("app.kubernetes.io/managed-by"), strings.Clone("thingspace-operator")
	tab.String(k)
	tab.String(v)
	m := map[string]string{strings.Clone(k): strings.Clone(v), "x": "1"}
	Labels(tab, m)
	if len(m) != 2 || m["x"] != "1" {
		t.Fatalf("labels changed: %v", m)
	}
	for mk, mv := range m {
		if mk == k && (!same(mk, k) || !same(mv, v)) {
			t.Fatal("label key or value not shared")
		}
	}
	d := map[string][]byte{strings.Clone(k): []byte("t")}
	Keys(tab, d)
	for dk, dv := range d {
		if !same(dk, k) || string(dv) != "t" {
			t.Fatal("data key not shared, or value lost")
		}
	}
}

func TestLabelMapSharesEqualLabelSets(t *testing.T) {
	tab := &Table{Size: 8}
	a := map[string]string{"app.kubernetes.io/managed-by": "thingspace-operator", "team": "a"}
	b := map[string]string{"team": "a", "app.kubernetes.io/managed-by": "thingspace-operator"}
	c := map[string]string{"team": "b", "app.kubernetes.io/managed-by": "thingspace-operator"}
	sa, sb, sc := LabelMap(tab, a), LabelMap(tab, b), LabelMap(tab, c)
	if fmt.Sprintf("%p", sa) != fmt.Sprintf("%p", sb) {
		t.Fatal("equal label sets not shared")
	}
	if fmt.Sprintf("%p", sa) == fmt.Sprintf("%p", sc) || sc["team"] != "b" {
		t.Fatal("different label sets shared")
	}
	// Keys and values that would collide if simply concatenated stay apart.
	x, y := LabelMap(tab, map[string]string{"ab": "c"}), LabelMap(tab, map[string]string{"a": "bc"})
	if x["ab"] != "c" || y["a"] != "bc" {
		t.Fatal("collision")
	}
}
