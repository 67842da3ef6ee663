package intern

import (
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
