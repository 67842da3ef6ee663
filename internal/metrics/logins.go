package metrics

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// loginFailures exports thingspace_m2m_login_consecutive_failures{namespace,name,username_hash}: per
// M2MSession, the consecutive failed logins of the username it logs in with, read from the lockout gate
// at each scrape. The gate counts per username across sessions (a success from any session resets it),
// so a session held back by another's failures shows them at once, not at its next pass.
//
// The username is never a label: with Verizon's lock at five failures, whoever reads the metrics could
// lock a company's machine account (or pick it out as a target) by sending wrong passwords to the public
// login endpoint. username_hash is an HMAC of the endpoint and username under a key drawn at process
// start and never exported, cut to 12 hex digits: it tells which sessions share an account, and nobody
// can test a guessed username against it. It changes when the process restarts (so do all the series).
type loginFailures struct {
	desc *prometheus.Desc
	key  []byte

	mu       sync.Mutex
	sessions map[[2]string]loginSource
}

type loginSource struct {
	hash  string
	count func() int
}

func newLoginFailures() *loginFailures {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand panics rather than return an error)
	return &loginFailures{
		desc: prometheus.NewDesc(namespace+"_m2m_login_consecutive_failures",
			"Consecutive failed UWS logins of the username an M2MSession logs in with (Verizon locks it at 5); username_hash is a keyed hash, never the username.",
			[]string{"namespace", "name", "username_hash"}, nil),
		key:      key,
		sessions: map[[2]string]loginSource{},
	}
}

// hash is username_hash of a lockout key (endpoint and username).
func (l *loginFailures) hash(lockoutKey string) string {
	m := hmac.New(sha256.New, l.key)
	m.Write([]byte(lockoutKey))
	return hex.EncodeToString(m.Sum(nil))[:12]
}

func (l *loginFailures) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

func (l *loginFailures) Collect(ch chan<- prometheus.Metric) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, s := range l.sessions {
		ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, float64(s.count()), id[0], id[1], s.hash)
	}
}

func (l *loginFailures) forget(ns, name string) {
	l.mu.Lock()
	delete(l.sessions, [2]string{ns, name})
	l.mu.Unlock()
}

// TrackLogins makes the M2MSession ns/name export the consecutive login failures of the username with
// lockout key lockoutKey (lockout.Key: endpoint and username), as count reports them at scrape time. A
// later call replaces the username (the credentials changed); ForgetSession ends the series. count runs
// during a scrape: it must be quick and must not block on a login.
func TrackLogins(ns, name, lockoutKey string, count func() int) {
	h := logins.hash(lockoutKey)
	logins.mu.Lock()
	logins.sessions[[2]string{ns, name}] = loginSource{hash: h, count: count}
	logins.mu.Unlock()
}
