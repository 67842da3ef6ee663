package tokenbroker

import (
	"slices"

	"k8s.io/apimachinery/pkg/types"
)

// holderSet is the set of objects holding one key's token. Almost every key has one holder: a slice
// costs 32 bytes for it where a map cost some 300 (make bench: 10,000 ThingSpaceApps); a key shared by
// many objects moves to a map, so adding and removing stay cheap.
type holderSet struct {
	few  []types.NamespacedName
	many map[types.NamespacedName]struct{}
}

// maxFew is how many holders the slice takes before the set becomes a map.
const maxFew = 8

func (h *holderSet) add(who types.NamespacedName) {
	switch {
	case h.many != nil:
		h.many[who] = struct{}{}
	case slices.Contains(h.few, who):
	case len(h.few) < maxFew:
		h.few = append(h.few, who)
	default:
		h.many = make(map[types.NamespacedName]struct{}, len(h.few)+1)
		for _, f := range h.few {
			h.many[f] = struct{}{}
		}
		h.many[who] = struct{}{}
		h.few = nil
	}
}

func (h *holderSet) remove(who types.NamespacedName) {
	if h.many != nil {
		delete(h.many, who)
		return
	}
	if i := slices.Index(h.few, who); i >= 0 {
		h.few = slices.Delete(h.few, i, i+1)
	}
}

func (h *holderSet) len() int {
	if h.many != nil {
		return len(h.many)
	}
	return len(h.few)
}

// except returns the holders other than who, in a new slice.
func (h *holderSet) except(who types.NamespacedName) []types.NamespacedName {
	var out []types.NamespacedName
	if h.many != nil {
		for o := range h.many {
			if o != who {
				out = append(out, o)
			}
		}
		return out
	}
	for _, o := range h.few {
		if o != who {
			out = append(out, o)
		}
	}
	return out
}
