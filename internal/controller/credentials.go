package controller

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// credentialsCensus counts, per namespace and from the caches (c the manager's, meta the metadata-only
// Secret cache), the distinct credentials Secrets the objects name and all the Secrets there are not labelled as the operator's: what
// credcache.Primer weighs before listing a namespace. The caches' objects are read without copies.
func credentialsCensus(c, meta client.Reader, clusterNS string) func(ctx context.Context) (map[string]int, map[string]int, error) {
	return func(ctx context.Context) (map[string]int, map[string]int, error) {
		names := map[types.NamespacedName]struct{}{}
		add := func(ns string, refs ...*v1alpha1.LocalSecretReference) {
			for _, r := range refs {
				if n := r.NameOrEmpty(); n != "" && ns != "" {
					names[types.NamespacedName{Namespace: ns, Name: n}] = struct{}{}
				}
			}
		}
		noCopy := client.UnsafeDisableDeepCopy
		apps := &v1alpha1.ThingSpaceAppList{}
		sessions := &v1alpha1.M2MSessionList{}
		clouds := &v1alpha1.CloudAuthorizationList{}
		clusterApps := &v1alpha1.ClusterThingSpaceAppList{}
		clusterSessions := &v1alpha1.ClusterM2MSessionList{}
		for _, l := range []client.ObjectList{apps, sessions, clouds, clusterApps, clusterSessions} {
			if err := c.List(ctx, l, noCopy); err != nil {
				return nil, nil, err
			}
		}
		for i := range apps.Items {
			a := &apps.Items[i]
			add(a.Namespace, a.Spec.CredentialsSecretRef, a.Spec.StandbyCredentialsSecretRef)
		}
		for i := range sessions.Items {
			add(sessions.Items[i].Namespace, sessions.Items[i].Spec.CredentialsSecretRef)
		}
		for i := range clouds.Items {
			add(clouds.Items[i].Namespace, &clouds.Items[i].Spec.CredentialsSecretRef)
		}
		for i := range clusterApps.Items {
			add(clusterNS, clusterApps.Items[i].Spec.CredentialsSecretRef, clusterApps.Items[i].Spec.StandbyCredentialsSecretRef)
		}
		for i := range clusterSessions.Items {
			add(clusterNS, clusterSessions.Items[i].Spec.CredentialsSecretRef)
		}
		referenced := map[string]int{}
		for k := range names {
			referenced[k.Namespace]++
		}
		all := &metav1.PartialObjectMetadataList{}
		all.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
		if err := meta.List(ctx, all, noCopy); err != nil {
			return nil, nil, err
		}
		counts := map[string]int{}
		for i := range all.Items {
			if all.Items[i].Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedByValue { // as the Primer's List
				counts[all.Items[i].Namespace]++
			}
		}
		return referenced, counts, nil
	}
}
