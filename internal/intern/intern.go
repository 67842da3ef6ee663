// Package intern shares the strings that repeat across the objects the manager caches.
//
// The informers decode every object on its own: each of 10,000 managed Secrets carries its own copy of
// the namespace, of the label app.kubernetes.io/managed-by=thingspace-operator, of the owner reference's
// group version and kind, of its annotation and data keys. The cache transforms replace those copies
// with one shared string each (strings are immutable, so sharing them is safe), which frees a few
// hundred bytes an object. Only fields whose values repeat go through a Table; names, UIDs, values of
// data and resource versions are left alone.
package intern

import (
	"sync"
	"unsafe"
)

// DefaultSize bounds a Table: past it, strings not yet known are returned as they are, so a flood of
// distinct values (many namespaces, per-object label values) costs no more than without the table.
const DefaultSize = 4096

// Table is a bounded set of shared strings, safe for concurrent use. The zero value holds up to
// DefaultSize strings.
type Table struct {
	// Size bounds the table; zero means DefaultSize.
	Size int

	mu sync.RWMutex
	m  map[string]string
	b  map[string][]byte
	l  map[string]map[string]string
}

// String returns the shared copy of s: the first s the table was given with these bytes, or s itself
// (kept, while the table has room).
func (t *Table) String(s string) string {
	if s == "" {
		return ""
	}
	t.mu.RLock()
	v, ok := t.m[s]
	t.mu.RUnlock()
	if ok {
		return v
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.m[s]; ok {
		return v
	}
	if t.held() >= t.size() {
		return s
	}
	if t.m == nil {
		t.m = map[string]string{}
	}
	t.m[s] = s
	return s
}

// Bytes returns the shared copy of b, as String does. The bytes are shared between objects: for fields
// nothing writes to in place (a managedFields entry's FieldsV1; deep copies copy them).
func (t *Table) Bytes(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	t.mu.RLock()
	v, ok := t.b[string(b)]
	t.mu.RUnlock()
	if ok {
		return v
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.b[string(b)]; ok {
		return v
	}
	if t.held() >= t.size() {
		return b
	}
	if t.b == nil {
		t.b = map[string][]byte{}
	}
	t.b[string(b)] = b
	return b
}

func (t *Table) held() int { return len(t.m) + len(t.b) + len(t.l) }

func (t *Table) size() int {
	if t.Size <= 0 {
		return DefaultSize
	}
	return t.Size
}

// Keys replaces the keys of m with their shared copies, in place.
func Keys[V any](t *Table, m map[string]V) {
	for k, v := range m {
		if shared := t.String(k); unsafeDiffers(shared, k) {
			delete(m, k)
			m[shared] = v
		}
	}
}

// Labels replaces the keys and values of m with their shared copies, in place. For maps whose values
// repeat too (labels; not annotations).
func Labels(t *Table, m map[string]string) {
	for k, v := range m {
		sk, sv := t.String(k), t.String(v)
		if unsafeDiffers(sk, k) {
			delete(m, k)
		}
		m[sk] = sv
	}
}

// Len is how many strings the table holds.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.held()
}

// unsafeDiffers reports whether a and b (equal strings) are different copies.
func unsafeDiffers(a, b string) bool { return unsafe.StringData(a) != unsafe.StringData(b) }
