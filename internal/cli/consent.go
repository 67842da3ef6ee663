package cli

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"runtime"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// ConsentOptions are the arguments and flags of `consent`.
type ConsentOptions struct {
	// Name is the CloudAuthorization's name.
	Name string
	// Open tries to open the link in a browser; the link is printed either way.
	Open bool
}

// Consent prints a CloudAuthorization's consent link and when it expires, or says it is already
// authorized. The link is in the Secret status.consentSecretName names (data key authorization_url),
// read with the caller's own RBAC: whoever may not read that Secret may not consent, and is told so.
func (r *Runner) Consent(ctx context.Context, o ConsentOptions) error {
	k, _ := parseKind("CloudAuthorization")
	key := types.NamespacedName{Namespace: r.Namespace, Name: o.Name}
	var ca v1alpha1.CloudAuthorization
	if err := r.Client.Get(ctx, key, &ca); err != nil {
		return apiError(err, "get", k, key)
	}
	what := fmt.Sprintf("CloudAuthorization %s/%s", key.Namespace, key.Name)
	now := r.Clock.Now()
	authorized := meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionAuthorized)
	if authorized != nil && authorized.Status == metav1.ConditionTrue {
		_, err := fmt.Fprintf(r.Out, "%s is already authorized (%s, since %s): no consent is needed.\n",
			what, authorized.Reason, When(timeOf(&authorized.LastTransitionTime), now))
		return err
	}
	name := ca.Status.ConsentSecretName
	noLink := func() error {
		why := "the operator has not posted one yet"
		if authorized != nil {
			why = fmt.Sprintf("Authorized=%s (%s): %s", authorized.Status, authorized.Reason, truncate(clean(authorized.Message), 4*maxMessage))
		}
		return fmt.Errorf("%s has no consent link: %s", what, why)
	}
	if name == "" || ca.Status.ConsentExpiresAt == nil {
		return noLink()
	}
	secretKey := types.NamespacedName{Namespace: key.Namespace, Name: name}
	var sec corev1.Secret
	if err := r.Client.Get(ctx, secretKey, &sec); err != nil {
		return secretError(err, secretKey)
	}
	link := string(sec.Data[v1alpha1.SecretKeyAuthorizationURL])
	if link == "" {
		return noLink()
	}
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%s: the consent Secret %s holds no http(s) link; not printing or opening it", what, name)
	}
	expires := timeOf(ca.Status.ConsentExpiresAt)
	fmt.Fprintf(r.Out, "Consent link for %s, expires %s (open it in the browser you consent in; it works only there once opened):\n%s\n", what, When(expires, now), link)
	if expires != nil && !now.Before(*expires) {
		return fmt.Errorf("the link of %s has expired; the operator replaces it shortly: run consent again", what)
	}
	if !o.Open {
		return nil
	}
	open := r.Open
	if open == nil {
		open = OpenBrowser
	}
	if err := open(link); err != nil {
		_, err = fmt.Fprintf(r.Out, "Could not open a browser (%v): open the link above yourself.\n", err)
		return err
	}
	_, err = fmt.Fprintln(r.Out, "Opened in your browser.")
	return err
}

// secretError explains a failed read of the consent Secret; a refusal is the expected answer for
// those who may view CloudAuthorizations but not consent.
func secretError(err error, key types.NamespacedName) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("forbidden: you may not get Secret %s in namespace %q, which holds the consent link; "+
			"consenting needs RBAC verb \"get\" on resource \"secrets\" (API group \"\") there, which viewers do not have: ask someone allowed to consent",
			key.Name, key.Namespace)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("the consent Secret %s is not in namespace %q yet; the operator writes it shortly: run consent again", key.Name, key.Namespace)
	}
	return fmt.Errorf("get Secret %s in namespace %q: %w", key.Name, key.Namespace, err)
}

// OpenBrowser opens link with xdg-open (open on macOS). It waits briefly for the opener to fail and
// otherwise leaves it running (some openers only return when the browser exits).
func OpenBrowser(link string) error {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("no %s: %w", name, err)
	}
	cmd := exec.Command(path, link)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	case <-time.After(3 * time.Second):
		return nil
	}
}
