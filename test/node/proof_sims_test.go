//go:build node

package node

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/credops/thingspace-operator/internal/simulator"
)

// The workload proof (TestWorkloads) runs against simulators of its own, so that its compressed token
// lifetimes touch nothing of TestNode's tenant: one for the apps with one key set, whose token is
// replaced at expiry, and one for the app with a standby key set, whose token is replaced
// handoverBefore before expiry. Their lifetimes are chosen so that both rotate at the same moments
// (proofRotationEvery), and three rotations fit in one window of about thirteen minutes.
const (
	// proofHandoverBefore must be longer than the kubelet's lag at its stock syncFrequency (up to
	// ~91 s: 1.5 × 1m + the 1 s sync tick), and the operator uses at most a third of the lifetime.
	proofHandoverBefore = 120 * time.Second
	proofStandbyLife    = 3 * proofHandoverBefore
	// proofRotationEvery is how often the standby app hands over (lifetime − handoverBefore); the
	// one-key apps get it as their whole lifetime, so they renew (at expiry) at the same moments.
	proofRotationEvery = proofStandbyLife - proofHandoverBefore
	proofOneKeyLife    = proofRotationEvery

	// proofCheckPath answers 200 to a Bearer its simulator accepts and the gateway's 401 fault 900901
	// otherwise, as a ThingSpace API would. proofM2MCheckPath is the simulator's own read-only M2M
	// call (the accounts keep-alive call), which needs both headers valid.
	proofCheckPath    = "/node-test/check"
	proofM2MCheckPath = "/api/m2m/v1/accounts/0000123456-00001"
	// workloadHeader names the calling workload; the ledger counts calls by it.
	workloadHeader = "X-Workload"
)

// The upstream credentials of the proof; every secret part is registered as sensitive.
var (
	proofOneKey      = "proof-one-key"
	proofOneSecret   = "proof-one-secret-" + randHex(12)
	proofPrimaryKey  = "proof-primary-key"
	proofPrimarySec  = "proof-primary-secret-" + randHex(12)
	proofStandbyKey  = "proof-standby-key"
	proofStandbySec  = "proof-standby-secret-" + randHex(12)
	proofUWSUser     = "proof-uws-user"
	proofUWSPassword = "proof-uws-pass-" + randHex(12)
)

// proofSims are the proof's two simulators; setup starts them so the manager's allow-list names them.
var proofSims struct{ oneKey, standby *proofSim }

// proofSim is a simulator served on its own port of the node's addresses, with a ledger of what the
// workloads' calls carried and how they were answered.
type proofSim struct {
	*simulator.Server
	url    string
	srv    *http.Server
	ledger *ledger
}

func startProofSims(host string) error {
	var err error
	proofSims.oneKey, err = startProofSim(host, simulator.Config{
		Apps:          map[string]string{proofOneKey: proofOneSecret},
		TokenLifetime: proofOneKeyLife,
	})
	if err != nil {
		return err
	}
	proofSims.standby, err = startProofSim(host, simulator.Config{
		Apps:          map[string]string{proofPrimaryKey: proofPrimarySec, proofStandbyKey: proofStandbySec},
		M2MUsers:      map[string]string{proofUWSUser: proofUWSPassword},
		TokenLifetime: proofStandbyLife,
		// The stricter of the two behaviours Verizon may have: a session works only with the Bearer
		// that logged in, so the M2M workload's two headers must change together.
		M2MSessionTiedToBearer: true,
	})
	sensitive.AddCredentials(proofOneKey, proofOneSecret)
	sensitive.AddCredentials(proofPrimaryKey, proofPrimarySec)
	sensitive.AddCredentials(proofStandbyKey, proofStandbySec)
	sensitive.AddUWSCredentials(proofUWSUser, proofUWSPassword)
	return err
}

func startProofSim(host string, cfg simulator.Config) (*proofSim, error) {
	s := simulator.New(cfg)
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		return nil, err
	}
	p := &proofSim{Server: s, ledger: &ledger{by: map[string]*workloadCalls{}},
		url: fmt.Sprintf("http://%s:%d", host, ln.Addr().(*net.TCPAddr).Port)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+proofCheckPath, func(w http.ResponseWriter, r *http.Request) {
		bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !s.ValidBearer(strings.TrimSpace(bearer)) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]any{"fault": map[string]string{
				"code": "900901", "message": "Invalid Credentials", "description": "Access failure for API: " + proofCheckPath}})
			return
		}
		_, _ = w.Write([]byte("accepted\n"))
	})
	mux.Handle("/", s)
	p.srv = &http.Server{Handler: p.ledger.wrap(mux), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *proofSim) close() {
	if p != nil {
		_ = p.srv.Close()
	}
}

// hostPort is the simulator's host:port, for the manager's --allowed-endpoint-hosts.
func (p *proofSim) hostPort() string { return strings.TrimPrefix(p.url, "http://") }

// ledger records, per workload (workloadHeader), the calls that reached the upstream: how many, how
// many were refused, and when each credential (a digest, never the value) was first accepted.
type ledger struct {
	mu sync.Mutex
	by map[string]*workloadCalls
}

type workloadCalls struct {
	requests, refused int
	accepted          map[string]time.Time // credential digest → first accepted call
}

// credentialDigest is what identifies the credential a call carried: the Bearer's digest, and for an
// M2M call the session token's as well.
func credentialDigest(bearer, session string) string {
	if session == "" {
		return digest(bearer)
	}
	return digest(bearer) + "/" + digest(session)
}

func (l *ledger) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.Header.Get(workloadHeader)
		if name == "" {
			h.ServeHTTP(w, r)
			return
		}
		rec := &statusOf{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		bearer := strings.TrimSpace(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		cred := credentialDigest(bearer, r.Header.Get(simulator.M2MTokenHeader))
		l.mu.Lock()
		defer l.mu.Unlock()
		c := l.by[name]
		if c == nil {
			c = &workloadCalls{accepted: map[string]time.Time{}}
			l.by[name] = c
		}
		c.requests++
		if rec.status >= 300 {
			c.refused++
		} else if _, seen := c.accepted[cred]; !seen {
			c.accepted[cred] = time.Now()
		}
	})
}

// calls returns a copy of what the ledger holds for name.
func (l *ledger) calls(name string) workloadCalls {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.by[name]
	if c == nil {
		return workloadCalls{}
	}
	out := *c
	out.accepted = make(map[string]time.Time, len(c.accepted))
	for k, v := range c.accepted {
		out.accepted[k] = v
	}
	return out
}

type statusOf struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusOf) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusOf) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}
