package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// Browser plays a person's browser through a consent: it keeps cookies (the operator's start endpoint
// binds the consent to the browser with one) and follows no redirect by itself, so a test sees each
// step. Errors never quote a URL (the callback's holds a code).
type Browser struct {
	http *http.Client
	// Jar holds the browser's cookies; a test copies or drops them to play another browser.
	Jar http.CookieJar
}

// NewBrowser returns a browser with an empty cookie jar.
func NewBrowser() *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{Jar: jar, http: &http.Client{
		Timeout: time.Minute, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// NewBrowserBehindTLSProxy returns a browser whose https requests to host go, as plain HTTP, to addr
// (host:port): what a TLS-terminating Ingress in front of a manager pod does. The browser still sees
// the public https URL, so the start endpoint's Secure __Host- cookie is kept and sent back as a real
// browser would; a plain http request to the pod would never carry it.
func NewBrowserBehindTLSProxy(host, addr string) *Browser {
	b := NewBrowser()
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	b.http.Transport = &http.Transport{
		// For an https URL the transport takes the connection DialTLSContext returns as already secured.
		DialTLSContext: func(ctx context.Context, network, hostPort string) (net.Conn, error) {
			if h, _, err := net.SplitHostPort(hostPort); err != nil || h != host {
				return nil, errors.New("browser: only the proxied host is reachable over https")
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}
	return b
}

// Page is one answer the browser got.
type Page struct {
	URL      *url.URL
	Status   int
	Location *url.URL // the redirect's target, nil when none
	Body     string
}

// Get opens u and reads the answer.
func (b *Browser) Get(ctx context.Context, u string) (Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Page{}, errors.New("browser: unusable URL")
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return Page{}, fmt.Errorf("browser: GET %s%s failed", req.URL.Host, req.URL.Path)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	p := Page{URL: req.URL, Status: resp.StatusCode, Body: string(body)}
	if loc := resp.Header.Get("Location"); loc != "" {
		if p.Location, err = req.URL.Parse(loc); err != nil {
			return p, errors.New("browser: unparsable Location")
		}
	}
	return p, nil
}

// Consent is what a browser saw going through a consent link.
type Consent struct {
	// Start is the operator's answer to the link (a redirect to Verizon, setting the cookie).
	Start Page
	// Callback is where Verizon sent the browser back (with code or error, and state); nil when it
	// did not redirect.
	Callback *url.URL
	// Page is the operator's answer at the callback.
	Page Page
}

// Consent opens link (the consent Secret's authorization_url), follows the operator's redirect to the
// simulator's consent page, which decides at once (consent, or a denial), and follows the simulator's
// redirect back to the operator's callback, carrying the browser's cookies.
func (b *Browser) Consent(ctx context.Context, link string) (Consent, error) {
	var c Consent
	var err error
	if c.Start, err = b.Get(ctx, link); err != nil {
		return c, err
	}
	if c.Start.Location == nil || c.Start.Status/100 != 3 {
		return c, fmt.Errorf("start: status %d without a redirect", c.Start.Status)
	}
	authorize, err := b.Get(ctx, c.Start.Location.String())
	if err != nil {
		return c, err
	}
	if authorize.Status != http.StatusFound || authorize.Location == nil {
		return c, fmt.Errorf("authorize: status %d", authorize.Status)
	}
	c.Callback = authorize.Location
	c.Page, err = b.Get(ctx, c.Callback.String())
	return c, err
}

// ConsentLink reads the consent link of the CloudAuthorization key from the Secret its status names,
// with c's own rights; "" (and no error) while there is none.
func ConsentLink(ctx context.Context, c client.Client, key types.NamespacedName) (string, error) {
	ca := &v1alpha1.CloudAuthorization{}
	if err := c.Get(ctx, key, ca); err != nil {
		return "", err
	}
	if ca.Status.ConsentSecretName == "" || ca.Status.ConsentStateHash == "" {
		return "", nil
	}
	s := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: ca.Status.ConsentSecretName}, s); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	return string(s.Data[v1alpha1.SecretKeyAuthorizationURL]), nil
}
