package secrets

import (
	"context"
	"errors"
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
	return w.storeCredential(ctx, key, dataKey, nil, value)
}

// ErrSuperseded is StoreCredentialReplacing's answer when the Secret holds neither the value it
// replaces nor the new one: someone else has stored a newer value since, and writing would undo it.
var ErrSuperseded = errors.New("the credentials Secret holds a newer value")

// StoreCredentialReplacing is StoreCredential for a value that replaces old: it writes only while the
// Secret still holds old (or already holds value), on the resourceVersion it read that from. A late
// retry of a reset's password (another manager may have reset again and stored a newer one meanwhile)
// must never put an older password back. It returns ErrSuperseded without writing otherwise.
func (w *Writer) StoreCredentialReplacing(ctx context.Context, key types.NamespacedName, dataKey string, old, value []byte) error {
	return w.storeCredential(ctx, key, dataKey, old, value)
}

// storeCredential writes value; with replaces non-nil only over it (see StoreCredentialReplacing).
func (w *Writer) storeCredential(ctx context.Context, key types.NamespacedName, dataKey string, replaces, value []byte) error {
	var lastErr error
	err := wait.ExponentialBackoffWithContext(ctx, credentialBackoff, func(ctx context.Context) (bool, error) {
		s := &corev1.Secret{}
		if lastErr = w.Reader.Get(ctx, key, s); lastErr != nil {
			return false, nil
		}
		if string(s.Data[dataKey]) == string(value) {
			return true, nil
		}
		if replaces != nil && string(s.Data[dataKey]) != string(replaces) {
			return false, ErrSuperseded
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
	if errors.Is(err, ErrSuperseded) {
		return fmt.Errorf("storing %s in Secret %s: %w", dataKey, key.Name, err)
	}
	if lastErr != nil {
		err = lastErr
	}
	return fmt.Errorf("storing %s in Secret %s: %w", dataKey, key.Name, err)
}
