//go:build node

package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/credops/thingspace-operator/internal/simulator"
	"github.com/credops/thingspace-operator/test/harness"
)

// The upstream credentials of the tests; every secret part is registered as sensitive.
const (
	appKey        = "node-app-key"
	uwsUser       = "node-uws-user"
	cloudClientID = "node-cloud-client"
	// cloudCallback is the Callback URL registered for the Cloud client: the "browser" of the tests
	// sends the redirect to a manager pod's callback port instead (there is no ingress on the node).
	cloudCallback = "https://thingspace-callback.node.test/oauth2/callback"
	// workloadCheckPath answers 200 to a Bearer the simulator accepts and 401 otherwise: what a
	// workload's API call would find. It is not counted in the simulator's stats.
	workloadCheckPath = "/node-test/check"
)

var (
	appSecret         = "node-app-secret-" + randHex(12)
	uwsPassword       = "node-uws-pass-" + randHex(12)
	cloudClientSecret = "node-cloud-secret-" + randHex(12)
)

// upstream is the ThingSpace simulator served by this process on the pod network's gateway, so that
// manager and workload pods reach it, and its counts are read without a round trip.
type upstream struct {
	*simulator.Server
	url string // base URL as pods reach it
	srv *http.Server
}

func startUpstream(host string) (*upstream, error) {
	s := simulator.New(simulator.Config{
		Apps:      map[string]string{appKey: appSecret},
		M2MUsers:  map[string]string{uwsUser: uwsPassword},
		CloudApps: map[string]simulator.CloudApp{cloudClientID: {Secret: cloudClientSecret, CallbackURL: cloudCallback}},
	})
	sensitive.AddCredentials(appKey, appSecret)
	sensitive.AddUWSCredentials(uwsUser, uwsPassword)
	sensitive.Add("the Cloud client secret", cloudClientSecret)
	// All addresses of the node's namespace: the gateway address only exists once the CNI made its
	// bridge, and nothing outside the namespace can reach it.
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+workloadCheckPath, func(w http.ResponseWriter, r *http.Request) {
		bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !s.ValidBearer(strings.TrimSpace(bearer)) {
			http.Error(w, "rejected", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("accepted\n"))
	})
	mux.Handle("/", s)
	u := &upstream{Server: s, url: fmt.Sprintf("http://%s:%d", host, ln.Addr().(*net.TCPAddr).Port),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

func (u *upstream) close() { _ = u.srv.Close() }

// credentialCalls counts the requests that obtain or end credentials: app token requests and revokes,
// UWS logins, logouts and resets, and Verizon Cloud token grants (code exchanges and refreshes).
// Keep-alives and account reads are not among them.
func (u *upstream) credentialCalls() map[string]int {
	st := u.Stats()
	out := map[string]int{}
	for _, r := range []string{harness.RouteToken, harness.RouteRevoke, harness.RouteM2MLogin,
		harness.RouteM2MLogout, harness.RouteM2MReset, harness.RouteCloudToken} {
		if n := st.Total(r); n > 0 {
			out[r] = n
		}
	}
	return out
}

// consent plays the person: it opens the consent link (the public https callback host) through a
// TLS-terminating proxy to a manager pod (callbackHost, host:port), which sets its binding __Host-
// cookie and redirects to the simulator's authorize page; it then follows the redirect with the code
// back to the callback, through the same proxy, with the cookie, and returns the callback's status.
func (u *upstream) consent(ctx context.Context, link, callbackHost string) (int, error) {
	start, err := url.Parse(link)
	if err != nil || start.Scheme != "https" {
		return 0, errors.New("start: unusable consent link")
	}
	b := harness.NewBrowserBehindTLSProxy(start.Hostname(), callbackHost)
	p, err := b.Get(ctx, start.String())
	if err != nil || p.Location == nil {
		return 0, fmt.Errorf("start: status %d, %v", p.Status, err)
	}
	p, err = b.Get(ctx, p.Location.String())
	if err != nil || p.Status != http.StatusFound || p.Location == nil || p.Location.Query().Get("code") == "" {
		return 0, fmt.Errorf("authorize: status %d, %v", p.Status, err)
	}
	if p, err = b.Get(ctx, p.Location.String()); err != nil {
		return 0, errors.New("callback: request failed")
	}
	return p.Status, nil
}
