package controller

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// credentialsError says a referenced credentials Secret or one of its keys is missing. It names the
// Secret and the keys, never a value.
type credentialsError struct {
	secret  string
	missing []string
}

func (e *credentialsError) Error() string {
	if len(e.missing) == 0 {
		return fmt.Sprintf("credentials Secret %q not found", e.secret)
	}
	return fmt.Sprintf("credentials Secret %q lacks data key(s) %s", e.secret, strings.Join(e.missing, ", "))
}

// credentialSecret is what was read from a credentials Secret.
type credentialSecret struct {
	values          map[string]string
	resourceVersion string
}

// readCredentials reads keys from the Secret ns/name past the cache: credentials Secrets are not
// managed, and caching every Secret in the cluster is what made other operators run out of memory.
func readCredentials(ctx context.Context, r client.Reader, ns, name string, keys ...string) (credentialSecret, error) {
	s := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return credentialSecret{}, &credentialsError{secret: name}
		}
		return credentialSecret{}, err
	}
	out := credentialSecret{values: make(map[string]string, len(keys)), resourceVersion: s.ResourceVersion}
	var missing []string
	for _, k := range keys {
		v := strings.TrimSpace(string(s.Data[k]))
		if v == "" {
			missing = append(missing, k)
			continue
		}
		out.values[k] = v
	}
	if len(missing) > 0 {
		return credentialSecret{}, &credentialsError{secret: name, missing: missing}
	}
	return out, nil
}

// credentialsReferenced tells, from the caches, whether the Secret ns/name is the credentials of some
// object (credcache.Primer keeps only those): a namespaced kind's in ns, or a cluster kind's when ns is
// the cluster resource namespace.
func credentialsReferenced(c client.Reader, clusterNS string) func(ctx context.Context, ns, name string) bool {
	type ref struct {
		list  func() client.ObjectList
		field string
	}
	namespaced := []ref{
		{func() client.ObjectList { return &v1alpha1.ThingSpaceAppList{} }, indexCredentialsSecret},
		{func() client.ObjectList { return &v1alpha1.ThingSpaceAppList{} }, indexStandbySecret},
		{func() client.ObjectList { return &v1alpha1.M2MSessionList{} }, indexCredentialsSecret},
		{func() client.ObjectList { return &v1alpha1.CloudAuthorizationList{} }, indexCredentialsSecret},
	}
	cluster := []ref{
		{func() client.ObjectList { return &v1alpha1.ClusterThingSpaceAppList{} }, indexCredentialsSecret},
		{func() client.ObjectList { return &v1alpha1.ClusterThingSpaceAppList{} }, indexStandbySecret},
		{func() client.ObjectList { return &v1alpha1.ClusterM2MSessionList{} }, indexCredentialsSecret},
	}
	anyOf := func(ctx context.Context, refs []ref, opts ...client.ListOption) func(name string) bool {
		return func(name string) bool {
			for _, r := range refs {
				l := r.list()
				if err := c.List(ctx, l, append(opts, client.MatchingFields{r.field: name})...); err == nil && meta.LenList(l) > 0 {
					return true
				}
			}
			return false
		}
	}
	return func(ctx context.Context, ns, name string) bool {
		if anyOf(ctx, namespaced, client.InNamespace(ns))(name) {
			return true
		}
		return ns != "" && ns == clusterNS && anyOf(ctx, cluster)(name)
	}
}
