package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// The population, per set (--sets): two ThingSpaceApps sharing a key, one with renewBefore, one with a
// standby key set; three M2MSessions (keep-alive on the shared app, re-login on the renewBefore app,
// keep-alive with password rotation on the standby app); two CloudAuthorizations of one Verizon Cloud
// client (default renewal, renewBefore). Lifetimes are compressed: ThingSpace tokens and Cloud access
// tokens live 60s, M2M sessions idle out after 30s. The leads (how long before a death the design can
// have the replacement in place: 15 to 25 s) are several times what a kill, a failover or an API
// outage takes, so that a dead credential they cover is the operator's fault, not the machine's.
const (
	ns          = "chaos"
	cloudClient = "chaos-cloud"
	cloudSecret = "chaos-cloud-secret-0123456789"
	account     = "0000123456-00001"

	renewBefore     = 15 * time.Second
	handoverBefore  = 18 * time.Second
	keepAlive       = 5 * time.Second
	reloginInterval = 6 * time.Second
	rotateInterval  = 40 * time.Second
	cloudRenew      = 15 * time.Second
)

// Key and user names of set 0; set i appends "-<i>".
var (
	appKeys  = []string{"k-shared", "k-renew", "k-prim", "k-stby"}
	m2mUsers = []string{"u-keep", "u-relogin", "u-rotate"}
)

func appSecret(key string) string     { return "secret-of-" + key + "-5f2a9c" }
func initialPassword(u string) string { return "Pw-" + u + "-initial!7" }

// credential is one Secret the suite samples and what its credential is made of.
type credential struct {
	secret string // the Secret's name
	kind   string // "app", "session", "cloud"
	owner  string // the object's name
	// subjects are the ledger subjects whose calls can replace it.
	subjects []string
	// lead is how long before its credential dies the design can have a replacement in the Secret: 0
	// when the upstream only issues one after the old one is gone (a plain or renewBefore ThingSpace
	// token, which the gateway hands out again until it expires or is revoked).
	lead time.Duration
	// app is the ThingSpaceApp a session uses; keys the app keys of an app (primary, standby).
	app  string
	keys []string
	user string
	// relogin marks a session kept alive by logging in again.
	relogin bool
	// standby marks an app with a standby key set.
	standby bool
}

type population struct {
	creds    []credential
	clouds   []string
	users    []string // UWS users with password rotation
	allUsers []string
	// values that must never show up in a log, event, status or metric
	sensitive harness.Sensitive
}

func suffix(i int) string {
	if i == 0 {
		return ""
	}
	return fmt.Sprintf("-%d", i)
}

// simKeys and simUsers are every set's key and user names, for the simulator's flags.
func simKeys(sets int) []string {
	var out []string
	for i := range sets {
		for _, k := range appKeys {
			out = append(out, k+suffix(i))
		}
	}
	return out
}

func simUsers(sets int) []string {
	var out []string
	for i := range sets {
		for _, u := range m2mUsers {
			out = append(out, u+suffix(i))
		}
	}
	return out
}

func (e *env) createPopulation(ctx context.Context) (*population, error) {
	c := e.cp.Client
	p := &population{}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return nil, err
	}
	p.sensitive.AddCredentials(cloudClient, cloudSecret)
	for _, k := range simKeys(e.opts.Sets) {
		p.sensitive.AddCredentials(k, appSecret(k))
		if err := harness.CreateCredentials(ctx, c, ns, "creds-"+k, k, appSecret(k)); err != nil {
			return nil, err
		}
	}
	for _, u := range simUsers(e.opts.Sets) {
		p.sensitive.AddUWSCredentials(u, initialPassword(u))
		p.allUsers = append(p.allUsers, u)
		if err := harness.CreateUWSCredentials(ctx, c, ns, "uws-"+u, u, initialPassword(u)); err != nil {
			return nil, err
		}
	}
	if err := harness.CreateCredentials(ctx, c, ns, "creds-cloud", cloudClient, cloudSecret); err != nil {
		return nil, err
	}
	for i := range e.opts.Sets {
		sx := suffix(i)
		app := func(name, key string, mutate func(*v1alpha1.ThingSpaceApp)) error {
			a := harness.NewApp(ns, name, e.sim.URL, "creds-"+key, name+"-token")
			cr := credential{secret: name + "-token", kind: "app", owner: name, subjects: []string{"ts:" + key}, keys: []string{key}}
			if mutate != nil {
				mutate(a)
			}
			if a.Spec.StandbyCredentialsSecretRef != nil {
				stby := "k-stby" + sx
				cr.keys = append(cr.keys, stby)
				cr.subjects = append(cr.subjects, "ts:"+stby)
				cr.standby = true
			}
			p.creds = append(p.creds, cr)
			return c.Create(ctx, a)
		}
		if err := app("shared-a"+sx, "k-shared"+sx, nil); err != nil {
			return nil, err
		}
		if err := app("shared-b"+sx, "k-shared"+sx, nil); err != nil {
			return nil, err
		}
		if err := app("renew"+sx, "k-renew"+sx, func(a *v1alpha1.ThingSpaceApp) {
			a.Spec.RenewBefore = &metav1.Duration{Duration: renewBefore}
		}); err != nil {
			return nil, err
		}
		if err := app("standby"+sx, "k-prim"+sx, func(a *v1alpha1.ThingSpaceApp) {
			a.Spec.StandbyCredentialsSecretRef = &v1alpha1.LocalSecretReference{Name: "creds-k-stby" + sx}
			a.Spec.HandoverBefore = &metav1.Duration{Duration: handoverBefore}
		}); err != nil {
			return nil, err
		}
		session := func(name, appName, user string, interval time.Duration, acct string, rotate bool) error {
			s := harness.NewM2MSession(ns, name, appName, "uws-"+user, name+"-session", interval, acct)
			if rotate {
				s.Spec.PasswordRotation = &v1alpha1.PasswordRotationSpec{Interval: metav1.Duration{Duration: rotateInterval}}
				p.users = append(p.users, user)
			}
			var appKeys []string
			for _, cr := range p.creds {
				if cr.owner == appName {
					appKeys = cr.keys
				}
			}
			cr := credential{secret: name + "-session", kind: "session", owner: name, app: appName, user: user,
				subjects: []string{"m2m:" + user}, lead: m2mIdle - interval, relogin: acct == ""}
			for _, k := range appKeys {
				cr.subjects = append(cr.subjects, "ts:"+k)
			}
			p.creds = append(p.creds, cr)
			return c.Create(ctx, s)
		}
		if err := session("keep"+sx, "shared-a"+sx, "u-keep"+sx, keepAlive, account, false); err != nil {
			return nil, err
		}
		if err := session("relogin"+sx, "renew"+sx, "u-relogin"+sx, reloginInterval, "", false); err != nil {
			return nil, err
		}
		if err := session("rotate"+sx, "standby"+sx, "u-rotate"+sx, keepAlive, account, true); err != nil {
			return nil, err
		}
		for _, name := range []string{"cloud-a" + sx, "cloud-b" + sx} {
			ca := &v1alpha1.CloudAuthorization{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: v1alpha1.CloudAuthorizationSpec{
					Endpoint:             e.sim.URL + "/cloud/1",
					CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: "creds-cloud"},
					CallbackURL:          e.mgrs[0].mgr.CallbackURL,
					SecretName:           name + "-cloud",
				},
			}
			if name[len("cloud-")] == 'b' {
				ca.Spec.RenewBefore = &metav1.Duration{Duration: cloudRenew}
			}
			if err := c.Create(ctx, ca); err != nil {
				return nil, err
			}
			p.clouds = append(p.clouds, name)
			p.creds = append(p.creds, credential{secret: name + "-cloud", kind: "cloud", owner: name,
				subjects: []string{"cloud:" + cloudClient}, lead: cloudRenew})
		}
	}
	return p, nil
}

// consent plays the person for every CloudAuthorization: open its link, consent, and wait until it is
// Authorized. It runs before the faults start (a person is not part of the chaos).
func (e *env) consent(ctx context.Context, p *population) error {
	for _, name := range p.clouds {
		key := types.NamespacedName{Namespace: ns, Name: name}
		var link string
		if err := harness.WaitFor(ctx, 60*time.Second, 200*time.Millisecond, func() (bool, error) {
			var err error
			link, err = harness.ConsentLink(ctx, e.cp.Client, key)
			return link != "", err
		}); err != nil {
			return fmt.Errorf("%s: no consent link: %w", name, err)
		}
		// The replica serving the callback may still be syncing its caches: its listener comes up then.
		// The last attempt's error is kept: a setup that timed out once (make test at c35535c) said
		// nothing of why.
		var got harness.Consent
		var last error
		if err := harness.WaitFor(ctx, 90*time.Second, time.Second, func() (bool, error) {
			got, last = harness.NewBrowser().Consent(ctx, link)
			return last == nil, nil
		}); err != nil {
			return fmt.Errorf("%s: consent: %w (last attempt: %v)", name, err, last)
		}
		if got.Page.Status != http.StatusOK {
			return fmt.Errorf("%s: the callback answered %d", name, got.Page.Status)
		}
		if err := harness.WaitFor(ctx, 60*time.Second, 200*time.Millisecond, func() (bool, error) {
			ca := &v1alpha1.CloudAuthorization{}
			if err := e.cp.Client.Get(ctx, key, ca); err != nil {
				return false, err
			}
			return meta.IsStatusConditionTrue(ca.Status.Conditions, v1alpha1.ConditionAuthorized), nil
		}); err != nil {
			return fmt.Errorf("%s: not Authorized after consent: %w", name, err)
		}
	}
	return nil
}
