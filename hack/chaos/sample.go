package main

import (
	"context"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// sampleEvery is how often every Secret is read and its credentials checked with the simulator.
const sampleEvery = 250 * time.Millisecond

// sample is what every Secret held at one moment, and whether the simulator took it.
type sample struct {
	at time.Time
	// read is when the sample's last Secret read returned: the Secrets it holds were served between at
	// and read (zero in tests: at).
	read time.Time
	// creds[i] is the state of population.creds[i].
	creds []credState
	// unauthorized names CloudAuthorizations whose Authorized condition was not True.
	unauthorized []string
	// grants[i] is whether population.clouds[i]'s grant Secret held a live refresh token (false when
	// it held none).
	grants []bool
}

// readAt is when the sample's reads returned (at for a sample made without one, in tests).
func (s *sample) readAt() time.Time {
	if s.read.IsZero() {
		return s.at
	}
	return s.read
}

type credState struct {
	exists bool
	// values are the credential's parts: the token (app, cloud), or the session token and the app token
	// (session).
	values []string
	live   bool
	// parts is each value's liveness.
	parts []bool
}

// credValues are the parts of a credential in its Secret.
func credValues(cr credential, sec *corev1.Secret) []string {
	if cr.kind == "session" {
		return []string{string(sec.Data[v1alpha1.SecretKeySessionToken]), string(sec.Data[v1alpha1.SecretKeyAccessToken])}
	}
	return []string{string(sec.Data[v1alpha1.SecretKeyAccessToken])}
}

// fill sets each credential's liveness from live, the simulator's answer for the values in order.
func (s *sampler) fill(smp *sample, live []bool) {
	n := 0
	for i := range smp.creds {
		st := &smp.creds[i]
		if st.values == nil {
			continue
		}
		st.live = true
		for range st.values {
			st.live = st.live && live[n]
			st.parts = append(st.parts, live[n])
			n++
		}
	}
}

// sampler reads every Secret every sampleEvery, straight from the API server (not through the proxy).
type sampler struct {
	e       *env
	p       *population
	samples []sample
	// passwords[user] is every password its credentials Secret was seen with.
	passwords map[string]map[string]bool
	// refresh[ca] is the last refresh token seen in a CloudAuthorization's grant Secret.
	refresh map[string]string
	// held is every credential any sampled Secret held (tokens, session tokens, refresh tokens,
	// passwords): what the upstream calls were for.
	held   map[string]bool
	missed int
	// mu guards passwords for seenPasswords, the one read made while sampling goes on.
	mu sync.Mutex
	// authorized[ca] is the last Authorized condition seen (status, reason, message), noted in the timeline
	// when it changes.
	authorized map[string]string
}

func newSampler(e *env, p *population) *sampler {
	return &sampler{e: e, p: p, passwords: map[string]map[string]bool{}, refresh: map[string]string{}, held: map[string]bool{},
		authorized: map[string]string{}}
}

func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		s.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) once(ctx context.Context) {
	c := s.e.cp.Client
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	at := time.Now()
	list := &corev1.SecretList{}
	if err := c.List(cctx, list, client.InNamespace(ns)); err != nil {
		s.missed++
		return
	}
	byName := map[string]*corev1.Secret{}
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	smp := sample{at: at, read: time.Now(), creds: make([]credState, len(s.p.creds))}
	var values []string
	for i, cr := range s.p.creds {
		sec := byName[cr.secret]
		if sec == nil {
			continue
		}
		st := credState{exists: true, values: credValues(cr, sec)}
		for _, v := range st.values {
			if v == "" {
				st.exists = false // being written for the first time
			}
			s.held[v] = true
		}
		smp.creds[i] = st
		values = append(values, st.values...)
	}
	for _, u := range s.p.allUsers {
		if sec := byName["uws-"+u]; sec != nil {
			s.mu.Lock()
			if s.passwords[u] == nil {
				s.passwords[u] = map[string]bool{}
			}
			s.passwords[u][string(sec.Data[v1alpha1.CredentialsKeyPassword])] = true
			s.mu.Unlock()
			s.held[string(sec.Data[v1alpha1.CredentialsKeyPassword])] = true
		}
	}
	// Each grant's refresh token is asked about with the Secrets, after them.
	rts := make([]string, len(s.p.clouds))
	for i, ca := range s.p.clouds {
		rts[i] = s.grantToken(ca, byName[ca+"-grant"])
	}
	live, err := s.e.sim.Live(append(values, rts...))
	if err != nil || len(live) != len(values)+len(rts) {
		s.missed++
		return
	}
	s.fill(&smp, live)
	smp.grants = make([]bool, len(rts))
	for i, rt := range rts {
		smp.grants[i] = rt != "" && live[len(values)+i]
	}
	// The Secrets were read before the simulator was asked: one written in between would look dead. A
	// credential found dead is read again and asked about again, and the sample's time is the answer's.
	var again []int
	for i, st := range smp.creds {
		if st.exists && !st.live {
			again = append(again, i)
		}
	}
	// Likewise a grant whose refresh token was found dead: a refresh may have rotated it meanwhile.
	var againGrants []int
	for i, ok := range smp.grants {
		if !ok {
			againGrants = append(againGrants, i)
		}
	}
	if (len(again) > 0 || len(againGrants) > 0) && !s.askAgain(cctx, &smp, again, againGrants) {
		s.missed++
		return
	}
	cas := &v1alpha1.CloudAuthorizationList{}
	if err := c.List(cctx, cas, client.InNamespace(ns)); err == nil {
		for _, ca := range cas.Items {
			if !meta.IsStatusConditionTrue(ca.Status.Conditions, v1alpha1.ConditionAuthorized) {
				smp.unauthorized = append(smp.unauthorized, ca.Name)
			}
			s.noteAuthorized(&ca)
		}
	}
	s.samples = append(s.samples, smp)
}

// seenPasswords is a copy of passwords, safe while sampling goes on.
func (s *sampler) seenPasswords() map[string]map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[string]bool, len(s.passwords))
	for u, pw := range s.passwords {
		out[u] = maps.Clone(pw)
	}
	return out
}

// askAgain reads the Secrets of the credentials again[i] and of the grants againGrants[i], found
// dead, and asks the simulator about them again; the sample's time becomes the answer's. False: a read
// or the question failed.
func (s *sampler) askAgain(ctx context.Context, smp *sample, again, againGrants []int) bool {
	c := s.e.cp.Client
	var values []string
	for _, i := range again {
		sec := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: s.p.creds[i].secret}, sec); err != nil {
			return false
		}
		smp.creds[i].values = credValues(s.p.creds[i], sec)
		values = append(values, smp.creds[i].values...)
	}
	var rts []string
	for _, i := range againGrants {
		sec := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: s.p.clouds[i] + "-grant"}, sec); err != nil {
			if !apierrors.IsNotFound(err) {
				return false
			}
			sec = nil
		}
		rts = append(rts, s.grantToken(s.p.clouds[i], sec))
	}
	live, err := s.e.sim.Live(append(values, rts...))
	if err != nil || len(live) != len(values)+len(rts) {
		return false
	}
	for j, i := range againGrants {
		smp.grants[i] = rts[j] != "" && live[len(values)+j]
	}
	n := 0
	for _, i := range again {
		st := &smp.creds[i]
		st.live, st.parts = true, nil
		for range st.values {
			st.live = st.live && live[n]
			st.parts = append(st.parts, live[n])
			n++
		}
	}
	smp.at = time.Now()
	smp.read = smp.at
	return true
}

// grantToken is the refresh token sec (a grant Secret, nil when absent) holds, "" when none; it is
// remembered as ca's last one (an operator giving a grant up may empty it) and as a held credential.
func (s *sampler) grantToken(ca string, sec *corev1.Secret) string {
	if sec == nil || len(sec.Data[v1alpha1.SecretKeyRefreshToken]) == 0 {
		return ""
	}
	rt := string(sec.Data[v1alpha1.SecretKeyRefreshToken])
	s.refresh[ca], s.held[rt] = rt, true
	return rt
}

// noteAuthorized writes a CloudAuthorization's Authorized condition to the timeline when it changed
// since the last sample (status, reason, message and the object's resourceVersion).
func (s *sampler) noteAuthorized(ca *v1alpha1.CloudAuthorization) {
	now := "absent"
	if c := meta.FindStatusCondition(ca.Status.Conditions, v1alpha1.ConditionAuthorized); c != nil {
		now = string(c.Status) + "/" + c.Reason + ": " + c.Message
	}
	if s.authorized[ca.Name] == now {
		return
	}
	s.authorized[ca.Name] = now
	s.e.log.note("sampler: %s Authorized %s (resourceVersion %s)", ca.Name, now, ca.ResourceVersion)
}
