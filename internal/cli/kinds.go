package cli

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// kind is one of the operator's kinds, as the plugin knows it.
type kind struct {
	// Name is the Kind (ThingSpaceApp).
	Name string
	// Resource is the plural resource name (thingspaceapps).
	Resource string
	// ClusterScoped kinds have no namespace: `status` lists them with --all-namespaces only (a tenant
	// looking at its namespace neither sees nor may usually list them), `refresh` ignores -n.
	ClusterScoped bool
	// aliases are what `refresh` accepts besides Name and Resource (lower case).
	aliases []string
	newObj  func() client.Object
	newList func() client.ObjectList
}

// kinds in the order the status table groups them within a namespace.
var kinds = []kind{
	{Name: "ThingSpaceApp", Resource: "thingspaceapps", aliases: []string{"tsapp", "tsapps"},
		newObj: func() client.Object { return &v1alpha1.ThingSpaceApp{} }, newList: func() client.ObjectList { return &v1alpha1.ThingSpaceAppList{} }},
	{Name: "M2MSession", Resource: "m2msessions", aliases: []string{"m2m"},
		newObj: func() client.Object { return &v1alpha1.M2MSession{} }, newList: func() client.ObjectList { return &v1alpha1.M2MSessionList{} }},
	{Name: "CloudAuthorization", Resource: "cloudauthorizations", aliases: []string{"cloudauth", "cloudauths"},
		newObj: func() client.Object { return &v1alpha1.CloudAuthorization{} }, newList: func() client.ObjectList { return &v1alpha1.CloudAuthorizationList{} }},
	{Name: "ClusterThingSpaceApp", Resource: "clusterthingspaceapps", ClusterScoped: true, aliases: []string{"ctsapp", "ctsapps"},
		newObj: func() client.Object { return &v1alpha1.ClusterThingSpaceApp{} }, newList: func() client.ObjectList { return &v1alpha1.ClusterThingSpaceAppList{} }},
	{Name: "ClusterM2MSession", Resource: "clusterm2msessions", ClusterScoped: true, aliases: []string{"cm2m"},
		newObj: func() client.Object { return &v1alpha1.ClusterM2MSession{} }, newList: func() client.ObjectList { return &v1alpha1.ClusterM2MSessionList{} }},
}

// GroupResource is the resource with its API group, as RBAC and error messages name it.
func (k kind) GroupResource() string { return k.Resource + "." + v1alpha1.GroupVersion.Group }

// order is the kind's position in kinds.
func (k kind) order() int {
	for i := range kinds {
		if kinds[i].Name == k.Name {
			return i
		}
	}
	return len(kinds)
}

// parseKind finds a kind by any of its names, case-insensitively; the group suffix is allowed.
func parseKind(s string) (kind, bool) {
	s = strings.TrimSuffix(strings.ToLower(s), "."+v1alpha1.GroupVersion.Group)
	for _, k := range kinds {
		if s == strings.ToLower(k.Name) || s == k.Resource {
			return k, true
		}
		for _, a := range k.aliases {
			if s == a {
				return k, true
			}
		}
	}
	return kind{}, false
}

// parseTarget splits `<kind>/<name>` as `refresh` takes it.
func parseTarget(s string) (kind, string, error) {
	kindName, name, ok := strings.Cut(s, "/")
	if !ok || kindName == "" || name == "" || strings.Contains(name, "/") {
		return kind{}, "", fmt.Errorf("want <kind>/<name>, got %q", s)
	}
	k, ok := parseKind(kindName)
	if !ok {
		return kind{}, "", fmt.Errorf("unknown kind %q: use thingspaceapp (tsapp), m2msession (m2m), cloudauthorization (cloudauth), clusterthingspaceapp (ctsapp) or clusterm2msession (cm2m)", kindName)
	}
	return k, name, nil
}

// apiError turns an API error of verb on the object key of kind k into a message a person can act on.
// key.Name is empty for a list.
func apiError(err error, verb string, k kind, key types.NamespacedName) error {
	what := k.Name + " " + key.Name
	if key.Name == "" {
		what = k.Resource
	}
	where := fmt.Sprintf("in namespace %q", key.Namespace)
	switch {
	case k.ClusterScoped:
		where = "(cluster-scoped)"
	case key.Namespace == "":
		where = "in any namespace"
	}
	var status apierrors.APIStatus
	switch {
	case apierrors.IsForbidden(err):
		msg := ""
		if errors.As(err, &status) {
			msg = " (" + clean(status.Status().Message) + ")"
		}
		return fmt.Errorf("forbidden: you may not %s %s %s%s; this needs RBAC verb %q on resource %q of API group %q",
			verb, k.GroupResource(), where, msg, verb, k.Resource, v1alpha1.GroupVersion.Group)
	case apierrors.IsNotFound(err) && key.Name != "":
		return fmt.Errorf("%s not found %s", what, where)
	case meta.IsNoMatchError(err) || apierrors.IsNotFound(err):
		return fmt.Errorf("the API server does not serve %s: are the thingspace-operator CRDs installed? (%w)", k.GroupResource(), err)
	}
	return fmt.Errorf("%s %s %s: %w", verb, what, where, err)
}
