package cli

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"runtime"
	"time"

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

// Consent prints a CloudAuthorization's consent link (status.authorizationURL) and when it expires, or
// says it is already authorized. It only gets the object, with the caller's own RBAC.
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
	link := ca.Status.AuthorizationURL
	if link == "" {
		why := "the operator has not posted one yet"
		if authorized != nil {
			why = fmt.Sprintf("Authorized=%s (%s): %s", authorized.Status, authorized.Reason, truncate(clean(authorized.Message), 4*maxMessage))
		}
		return fmt.Errorf("%s has no consent link: %s", what, why)
	}
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%s: status.authorizationURL is not an http(s) URL; not printing or opening it", what)
	}
	expires := timeOf(ca.Status.AuthorizationURLExpiresAt)
	fmt.Fprintf(r.Out, "Consent link for %s, expires %s:\n%s\n", what, When(expires, now), link)
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
