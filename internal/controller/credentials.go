package controller

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
