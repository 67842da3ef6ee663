package secrets

import "sigs.k8s.io/controller-runtime/pkg/client"

// InNamespace makes owner, a cluster-scoped object, the owner of Secrets in namespace ns: Get, Fresh
// and Write look for and write its Secrets there, with a controller reference to owner itself (a
// cluster-scoped owner of a namespaced object is valid, and garbage collection follows it).
func InNamespace(owner client.Object, ns string) client.Object { return placed{Object: owner, ns: ns} }

// placed is a cluster-scoped owner seen from the namespace its Secrets live in.
type placed struct {
	client.Object
	ns string
}

func (p placed) GetNamespace() string { return p.ns }

// ownerOf is the object a controller reference names: the cluster-scoped owner itself, not its
// placement (whose namespace would make the reference look namespaced).
func ownerOf(o client.Object) client.Object {
	if p, ok := o.(placed); ok {
		return p.Object
	}
	return o
}
