package controller

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// credentialsCensus reads, per namespace and from the caches (c the manager's, meta the metadata-only
// Secret cache), the names of the credentials Secrets the objects name and how many Secrets not
// labelled as the operator's there are: what credcache.Primer lists and keeps. The caches' objects are read without copies.
func credentialsCensus(c, meta client.Reader, clusterNS string) func(ctx context.Context) (map[string]map[string]bool, map[string]int, error) {
	return func(ctx context.Context) (map[string]map[string]bool, map[string]int, error) {
		referenced := map[string]map[string]bool{}
		add := func(ns string, refs ...*v1alpha1.LocalSecretReference) {
			for _, r := range refs {
				if n := r.NameOrEmpty(); n != "" && ns != "" {
					if referenced[ns] == nil {
						referenced[ns] = map[string]bool{}
					}
					referenced[ns][n] = true
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
