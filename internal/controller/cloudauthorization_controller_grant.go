package controller

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/consent"
	"github.com/credops/thingspace-operator/internal/secrets"
)

// A CloudAuthorization's three Secrets: the grant (`<name>-grant`: refresh_token and the operator's
// record of the access token, with the refresh bookkeeping), the workload's (secretName: access_token,
// token_type, expires_at only, published from the grant) and the consent link (`<name>-consent`).

// publishedKeys are the data keys of the workload's Secret.
var publishedKeys = []string{KeyAccessToken, KeyTokenType, KeyExpiresAt}

// migrate moves a refresh token found in the workload's Secret (written by a version that kept the
// grant there, or a bootstrap Secret handed over the old way) into the grant Secret, when that holds
// none. The grant Secret is written first, with the refresh bookkeeping (a refresh marker included);
// only a later publish, once that write is stored, removes refresh_token from the workload's Secret.
// A crash in between leaves both holding it, and the grant Secret wins from then on.
func (r *CloudAuthorizationReconciler) migrate(ctx context.Context, p *cloudPass) error {
	if p.target == nil || len(p.target.Data[KeyRefreshToken]) == 0 || (p.sec != nil && len(p.sec.Data[KeyRefreshToken]) > 0) {
		return nil
	}
	if p.probe {
		return errNotIdle
	}
	data := map[string][]byte{}
	for _, k := range append([]string{KeyRefreshToken}, publishedKeys...) {
		if v, ok := p.target.Data[k]; ok {
			data[k] = v
		}
	}
	annotations := map[string]string{}
	for _, k := range []string{v1alpha1.RefreshStartedAnnotation, v1alpha1.RefreshedAtAnnotation} {
		if v, ok := p.target.Annotations[k]; ok {
			annotations[k] = v
		}
	}
	name := v1alpha1.GrantSecretName(p.ca)
	written, _, err := r.Secrets.Write(ctx, p.ca, p.sec, name, secrets.Change{Data: data, Annotations: annotations, Adopt: true})
	if err != nil {
		return err
	}
	p.sec = written
	log.FromContext(ctx).Info("Moved the refresh token into the grant Secret; the workload's Secret loses it next",
		"grant", klog.KRef(p.ca.Namespace, name), "secret", klog.KRef(p.ca.Namespace, p.ca.Spec.SecretName))
	return nil
}

// publish makes the workload's Secret hold the access token of the grant Secret as stored, and nothing
// else: no refresh token, no refresh bookkeeping. It is called after every pass, so it can only ever
// publish what the grant Secret already holds. Without an access token to publish, an existing
// workload Secret is still stripped (a migrated one loses its refresh token) and none is created.
func (r *CloudAuthorizationReconciler) publish(ctx context.Context, p *cloudPass) error {
	if !p.targetOK {
		return nil
	}
	// A refresh token the grant Secret does not hold yet (a migration whose first write failed) stays
	// where it is: it may be the only copy of the grant.
	if p.target != nil && len(p.target.Data[KeyRefreshToken]) > 0 && (p.sec == nil || len(p.sec.Data[KeyRefreshToken]) == 0) {
		return nil
	}
	data := map[string][]byte{}
	if p.sec != nil && len(p.sec.Data[KeyAccessToken]) > 0 {
		for _, k := range publishedKeys {
			if v, ok := p.sec.Data[k]; ok {
				data[k] = v
			}
		}
	}
	if p.target == nil && len(data) == 0 {
		return nil
	}
	ch := secrets.Change{
		Template: p.ca.Spec.SecretTemplate, Data: data, Adopt: true,
		Annotations: map[string]string{v1alpha1.RefreshStartedAnnotation: "", v1alpha1.RefreshedAtAnnotation: ""},
	}
	if p.probe {
		if !r.Secrets.Unchanged(p.ca, p.target, p.ca.Spec.SecretName, ch) {
			return errNotIdle
		}
		return nil
	}
	written, _, err := r.Secrets.Write(ctx, p.ca, p.target, p.ca.Spec.SecretName, ch)
	if err != nil {
		return err
	}
	p.target = written
	return nil
}

// offerConsent keeps a live consent link in the consent Secret, and status naming it. The Secret is
// read past the cache (a stale copy would look like a link to replace) and written before the status
// that makes its state valid.
func (r *CloudAuthorizationReconciler) offerConsent(ctx context.Context, p *cloudPass) error {
	name := v1alpha1.ConsentSecretName(p.ca)
	var cur *corev1.Secret
	var err error
	if p.probe {
		if cur, err = r.Secrets.Get(ctx, p.ca, name); err != nil {
			return errNotIdle
		}
	} else if cur, err = r.Secrets.Fresh(ctx, p.ca, name, nil); err != nil {
		return err
	}
	link := ""
	if cur != nil {
		link = string(cur.Data[v1alpha1.SecretKeyAuthorizationURL])
	}
	st := p.st.DeepCopy()
	link, fresh, err := r.Consent.Ensure(st, p.ca, link, p.now)
	if err != nil {
		return err
	}
	if fresh || cur == nil {
		if p.probe {
			return errNotIdle
		}
		if _, _, err := r.Secrets.Write(ctx, p.ca, cur, name, secrets.Change{
			Data: map[string][]byte{v1alpha1.SecretKeyAuthorizationURL: []byte(link)},
		}); err != nil {
			return err
		}
	}
	*p.st = *st
	return nil
}

// withdrawConsent removes the consent from status once a grant is in hand, and empties the consent
// Secret (the link would lead nowhere: its state is gone). Until that write lands, status keeps naming
// the Secret, so the next pass tries again.
func (r *CloudAuthorizationReconciler) withdrawConsent(ctx context.Context, p *cloudPass) error {
	consent.Clear(p.st)
	if p.st.ConsentSecretName == "" {
		return nil
	}
	cur, err := r.Secrets.Get(ctx, p.ca, p.st.ConsentSecretName)
	if isConflict(err) {
		// Not ours (it was never written by this object): nothing to withdraw.
		p.st.ConsentSecretName = ""
		return nil
	} else if err != nil {
		return err
	}
	if cur != nil && len(cur.Data) > 0 {
		if p.probe {
			return errNotIdle
		}
		if _, _, err := r.Secrets.Write(ctx, p.ca, cur, cur.Name, secrets.Change{Data: map[string][]byte{}}); err != nil {
			if apierrors.IsConflict(err) {
				return nil // the cache lagged; the Secret's change brings another pass
			}
			return err
		}
	}
	p.st.ConsentSecretName = ""
	return nil
}

// consentConflict reports a consent Secret name taken by a Secret that is not this object's.
func consentConflict(err error) (string, bool) {
	if isConflict(err) {
		return err.Error() + "; the operator writes the consent link into " + v1alpha1.ConsentSecretSuffix + " Secrets: rename or remove it", true
	}
	return "", false
}
