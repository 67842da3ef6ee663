package intern

import (
	"slices"
	"strings"
)

// LabelMap returns one shared map for every equal m: 10,000 Secrets labelled only
// app.kubernetes.io/managed-by=thingspace-operator hold one map, not 10,000 (a Go map of one entry
// takes a few hundred bytes). Only for maps nothing writes to, which objects in an informer's store
// are: readers get deep copies (controller-runtime's cache), event handlers only read. m itself is
// kept as the shared one when the table has room.
func LabelMap(t *Table, m map[string]string) map[string]string {
	if len(m) == 0 || len(m) > 8 {
		return m
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(m[k])
		b.WriteByte(0)
	}
	id := b.String()
	t.mu.RLock()
	shared, ok := t.l[id]
	t.mu.RUnlock()
	if ok {
		return shared
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if shared, ok := t.l[id]; ok {
		return shared
	}
	if t.held() >= t.size() {
		return m
	}
	if t.l == nil {
		t.l = map[string]map[string]string{}
	}
	t.l[id] = m
	return m
}
