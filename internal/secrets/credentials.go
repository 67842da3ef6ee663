package secrets

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// credentialBackoff bounds StoreCredential's retries: a few seconds, so a brief API-server blip does not
// cost a value that exists nowhere else, without holding a worker through a longer outage (the caller
// keeps the value and tries again).
var credentialBackoff = wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 5}

// StoreCredential writes value under dataKey into the user's credentials Secret key and touches nothing
// else: the Secret is the user's (no label, owner or template of ours), and its other keys are theirs.
// The write is a server-side apply of that one key as FieldOwner, so the Secret's managedFields say the
// operator set it (a GitOps tool that would put the old, now dead, password back shows a conflict on
// exactly that field). It reads past the caches (credentials Secrets are not cached) and retries briefly
// on any failure, conflicts included; the apply is conditional on the resourceVersion read, so a
// concurrent edit is re-read rather than overwritten blindly. Done when the Secret already holds value.
// Errors name the Secret, never the value.
func (w *Writer) StoreCredential(ctx context.Context, key types.NamespacedName, dataKey string, value []byte) error {
	var lastErr error
	err := wait.ExponentialBackoffWithContext(ctx, credentialBackoff, func(ctx context.Context) (bool, error) {
		s := &corev1.Secret{}
		if lastErr = w.Reader.Get(ctx, key, s); lastErr != nil {
			return false, nil
		}
		if string(s.Data[dataKey]) == string(value) {
			return true, nil
		}
		ac := corev1ac.Secret(key.Name, key.Namespace).WithResourceVersion(s.ResourceVersion).
			WithData(map[string][]byte{dataKey: value})
		if lastErr = w.Client.Apply(ctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership); lastErr != nil {
			return false, nil
		}
		return true, nil
	})
	if err == nil {
		return nil
	}
	if lastErr != nil {
		err = lastErr
	}
	return fmt.Errorf("storing %s in Secret %s: %w", dataKey, key.Name, err)
}
