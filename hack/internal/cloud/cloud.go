// Package cloud holds what make bench and make demo share for CloudAuthorizations: building one that
// points at the simulator, reading its conditions, and playing the person who consents in a browser.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// New returns a CloudAuthorization (not yet created) for the simulator at simURL, reading its app's
// credentials from credsName, sending the browser back to callbackURL and writing secretName.
func New(ns, name, simURL, credsName, callbackURL, secretName string) *v1alpha1.CloudAuthorization {
	return &v1alpha1.CloudAuthorization{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.CloudAuthorizationSpec{
			Endpoint:             Endpoint(simURL),
			CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: credsName},
			CallbackURL:          callbackURL,
			SecretName:           secretName,
		},
	}
}

// Endpoint is the Verizon Cloud API base on the simulator at simURL.
func Endpoint(simURL string) string { return simURL + "/cloud/1" }

// Condition returns the status and reason of ca's condition typ for its current generation; "" when
// there is none yet.
func Condition(ca *v1alpha1.CloudAuthorization, typ string) (metav1.ConditionStatus, string) {
	c := meta.FindStatusCondition(ca.Status.Conditions, typ)
	if c == nil || c.ObservedGeneration != ca.Generation {
		return "", ""
	}
	return c.Status, c.Reason
}

// AuthorizedAndReady reports whether ca is Authorized=True and Ready=True; otherwise the reason of the
// first of the two that is not ("" when there is no condition yet).
func AuthorizedAndReady(ca *v1alpha1.CloudAuthorization) (bool, string) {
	for _, typ := range []string{v1alpha1.ConditionAuthorized, v1alpha1.ConditionReady} {
		if st, reason := Condition(ca, typ); st != metav1.ConditionTrue {
			return false, reason
		}
	}
	return true, ""
}

// Visit is what the person's browser saw of one authorization URL.
type Visit struct {
	// Callback is where the simulator sent the browser: the manager's callback with a code (or an
	// error) and the state. It holds the code: print Redacted, never Callback itself.
	Callback *url.URL
	// AuthorizeTook is the person's part: the simulator's consent page answering with its redirect.
	// CallbackTook is the operator's: the manager's callback checking the state, exchanging the code,
	// storing the tokens and answering the page.
	AuthorizeTook, CallbackTook time.Duration
	// Status, Title and Detail are the callback page's.
	Status        int
	Title, Detail string
}

// Redacted is the callback URL with the values of code and state hidden.
func (v Visit) Redacted() string {
	if v.Callback == nil {
		return ""
	}
	u := *v.Callback
	q := u.Query()
	for _, k := range []string{"code", "state"} {
		if q.Has(k) {
			q.Set(k, "HIDDEN")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Person plays the people who consent: it opens authorization URLs as a browser would. The simulator
// stands in for the consent page and redirects at once, with a code or, while it is told to refuse,
// with error=access_denied.
type Person struct {
	sim  *harness.Sim
	http *http.Client
}

// NewPerson returns a Person for the simulator sim that keeps up to conns connections to the manager.
func NewPerson(sim *harness.Sim, conns int) *Person {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = max(conns, 2)
	// One browser: its cookie jar carries each consent's binding cookie from the operator's start
	// endpoint to its callback (cookie names differ per consent).
	jar, _ := cookiejar.New(nil)
	return &Person{sim: sim, http: &http.Client{
		Timeout:       time.Minute,
		Transport:     tr,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Open opens a consent link (the operator's start endpoint), follows its redirect to the simulator's
// consent page and the simulator's redirect to the manager's callback, with the browser's cookies.
// Errors never quote the callback URL (it holds a code).
func (p *Person) Open(ctx context.Context, link string) (Visit, error) {
	var v Visit
	t0 := time.Now()
	authURL, err := p.start(ctx, link)
	if err != nil {
		return v, err
	}
	loc, err := p.sim.CloudAuthorize(ctx, authURL)
	v.AuthorizeTook = time.Since(t0)
	if err != nil {
		return v, err
	}
	v.Callback = loc
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return v, errors.New("callback: unusable redirect")
	}
	t1 := time.Now()
	resp, err := p.http.Do(req)
	if err != nil {
		v.CallbackTook = time.Since(t1)
		return v, fmt.Errorf("callback %s: request failed", v.Redacted())
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	v.CallbackTook = time.Since(t1)
	v.Status = resp.StatusCode
	v.Title, v.Detail = firstText(body, "h1"), firstText(body, "p")
	return v, nil
}

// start opens the consent link at the operator and returns where it redirects (Verizon's authorize URL).
func (p *Person) start(ctx context.Context, link string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return "", errors.New("start: unusable consent link")
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return "", errors.New("start: request failed")
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || loc == "" {
		return "", fmt.Errorf("start: status %d without a redirect", resp.StatusCode)
	}
	return loc, nil
}

var tags = regexp.MustCompile(`<[^>]*>`)

// firstText is the text of the first element tag in an HTML page.
func firstText(page []byte, tag string) string {
	s := string(page)
	start := strings.Index(s, "<"+tag+">")
	if start < 0 {
		return ""
	}
	s = s[start+len(tag)+2:]
	if end := strings.Index(s, "</"+tag+">"); end >= 0 {
		s = s[:end]
	}
	return strings.TrimSpace(html.UnescapeString(tags.ReplaceAllString(s, "")))
}
