package controller

import (
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/thingspace"
)

// One ClusterM2MSession serves consumers in the namespaces it allows with its one login; the others get
// NotAllowed and no Secret; relabelling a namespace admits or withdraws it; a consumer's copy holds the
// cluster session's three keys, is owned by the consumer and carries its template.
func TestClusterSessionConsumers(t *testing.T) {
	f, app := clusterSessionFixture(t)
	team := map[string]string{"team.example/uws": "yes"}
	cm := f.clusterSession(app.Name, &v1alpha1.AllowedNamespaces{Names: []string{f.ns}, Selector: &metav1.LabelSelector{MatchLabels: team}})
	cmName := cm.Name
	b, c := f.tenant("b", team), f.tenant("c", nil)
	for _, x := range []*fixture{f, b, c} {
		x.sessionConsumer("s", cmName)
	}
	cm = f.waitClusterSession(cmName, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	src := secretIn(t, clusterNamespace, cm.Spec.SecretName)
	if src == nil || len(src.Data[KeySessionToken]) == 0 || metav1.GetControllerOf(src).UID != cm.UID {
		t.Fatalf("cluster session Secret: %+v", src)
	}
	for _, x := range []*fixture{f, b} {
		ns := x.ns
		s := x.waitConsumer("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
		c := secretIn(t, ns, "s-session")
		if c == nil {
			t.Fatalf("%s: no Secret", ns)
		}
		for _, k := range consumedKeys {
			if string(c.Data[k]) != string(src.Data[k]) {
				t.Errorf("%s: %s differs from the cluster session's", ns, k)
			}
		}
		if ref := metav1.GetControllerOf(c); ref == nil || ref.UID != s.UID || c.Labels["team.example/app"] != "fleet" {
			t.Errorf("%s: owner %+v, labels %v", ns, ref, c.Labels)
		}
		if len(s.Finalizers) != 0 || s.Status.LastLoginTime == nil {
			t.Errorf("%s: finalizers %v, lastLoginTime %v", ns, s.Finalizers, s.Status.LastLoginTime)
		}
	}
	c.waitConsumer("s", metav1.ConditionFalse, v1alpha1.ReasonNotAllowed)
	if secretIn(t, c.ns, "s-session") != nil {
		t.Fatal("a namespace not allowed got a Secret")
	}
	f.waitSessionCounts(cmName, v1alpha1.ConsumerStatus{Consumers: 2, RefusedConsumers: 1})
	// Series as for M2MSessions: the cluster session's under namespace "", each consumer's under its own.
	for _, want := range []struct {
		ns, name, series string
	}{{"", cmName, "thingspace_m2m_session_ready_status{True}"}, {f.ns, "s", "thingspace_m2m_session_ready_status{True}"},
		{c.ns, "s", "thingspace_m2m_session_ready_status{False}"}} {
		if got, leaked := objectSeries(t, want.ns, want.name, uwsUser); got[want.series] != 1 || leaked {
			t.Errorf("%q/%s: series %v (username leaked %v), want %s 1", want.ns, want.name, got, leaked, want.series)
		}
	}

	// Relabel: C is admitted, B withdrawn (its Secret deleted).
	c.relabel(team)
	b.relabel(nil)
	c.waitConsumer("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	b.waitConsumer("s", metav1.ConditionFalse, v1alpha1.ReasonNotAllowed)
	if secretIn(t, b.ns, "s-session") != nil {
		t.Fatal("a namespace no longer allowed keeps its Secret")
	}
	if cs := secretIn(t, c.ns, "s-session"); cs == nil || string(cs.Data[KeySessionToken]) != string(src.Data[KeySessionToken]) {
		t.Fatal("an admitted namespace has no copy")
	}
	f.waitSessionCounts(cmName, v1alpha1.ConsumerStatus{Consumers: 2, RefusedConsumers: 1})

	// A consumer deleted: the counts follow, nothing else changes.
	must(t, k8s.Delete(ctx, &v1alpha1.M2MSession{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: "s"}}))
	f.waitSessionCounts(cmName, v1alpha1.ConsumerStatus{Consumers: 1, RefusedConsumers: 1})
	if n := f.logins(); n != 1 {
		t.Fatalf("logins = %d, want 1 for every consumer", n)
	}
	if n := f.sim.Stats().Total("POST /api/m2m/v1/session/logout"); n != 0 {
		t.Fatalf("logouts = %d: a consumer has no session of its own", n)
	}

	// The ClusterM2MSession deleted: its session is logged out (logoutOnDelete), its consumers are not
	// Ready and keep their last copy.
	must(t, k8s.Delete(ctx, cm))
	f.waitConsumer("s", metav1.ConditionFalse, v1alpha1.ReasonPending)
	if n := f.sim.Stats().Count("POST /api/m2m/v1/session/logout", 200); n != 1 {
		t.Errorf("logouts = %d, want the cluster session's 1", n)
	}
	if secretIn(t, f.ns, "s-session") == nil {
		t.Error("the consumer's copy went with the ClusterM2MSession")
	}
}

// A new session token reaches a consumer in one write; a source that is not Ready makes its consumers
// not Ready, with its reason.
func TestClusterSessionTokenChangePropagatesInOneWrite(t *testing.T) {
	f, app := clusterSessionFixture(t)
	cmName := f.clusterSession(app.Name, &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{}}).Name
	f.sessionConsumer("s", cmName)
	f.waitConsumer("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	before := secretIn(t, f.ns, "s-session")

	w, err := watcher.Watch(ctx, &corev1.SecretList{}, client.InNamespace(f.ns), client.MatchingFields{"metadata.name": "s-session"},
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: before.ResourceVersion}})
	must(t, err)
	defer w.Stop()
	// A person asks the cluster session for a new login.
	cm := &v1alpha1.ClusterM2MSession{}
	must(t, k8s.Get(ctx, client.ObjectKey{Name: cmName}, cm))
	patch := client.MergeFrom(cm.DeepCopy())
	cm.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "1"}
	must(t, k8s.Patch(ctx, cm, patch))

	writes := 0
	timeout := time.After(10 * time.Second)
	var changedAt time.Time
	for changedAt.IsZero() || time.Since(changedAt) < time.Second {
		select {
		case ev := <-w.ResultChan():
			if ev.Type != watch.Modified {
				t.Fatalf("event %s on the consumer's Secret", ev.Type)
			}
			writes++
			s := ev.Object.(*corev1.Secret)
			if string(s.Data[KeySessionToken]) == string(before.Data[KeySessionToken]) {
				t.Fatalf("write %d did not change the session token", writes)
			}
			if changedAt.IsZero() {
				changedAt = time.Now()
			}
		case <-time.After(100 * time.Millisecond):
		case <-timeout:
			t.Fatal("the new session token never reached the consumer")
		}
	}
	src := secretIn(t, clusterNamespace, cm.Spec.SecretName)
	after := secretIn(t, f.ns, "s-session")
	if writes != 1 || string(after.Data[KeySessionToken]) != string(src.Data[KeySessionToken]) {
		t.Fatalf("writes = %d (want 1); copy current: %v", writes, string(after.Data[KeySessionToken]) == string(src.Data[KeySessionToken]))
	}
	if n := f.logins(); n != 2 {
		t.Fatalf("logins = %d, want 2", n)
	}

	// The source loses its app: not Ready, and so is the consumer, with the source's reason.
	must(t, k8s.Get(ctx, client.ObjectKey{Name: cmName}, cm))
	patch = client.MergeFrom(cm.DeepCopy())
	cm.Spec.AppRef.Name = "missing-" + f.ns
	must(t, k8s.Patch(ctx, cm, patch))
	f.waitClusterSession(cmName, metav1.ConditionFalse, v1alpha1.ReasonAppNotReady)
	s := f.waitConsumer("s", metav1.ConditionFalse, v1alpha1.ReasonAppNotReady)
	if msg := s.Status.Conditions[0].Message; msg == "" {
		t.Fatal("no message")
	}
}

// The lockout gate is the username's, whichever kind logs in: a password the platform refused to a
// namespaced M2MSession is never sent by a ClusterM2MSession of the same username and endpoint.
func TestClusterSessionSharesTheLockoutGate(t *testing.T) {
	f, app := clusterSessionFixture(t)
	f.credentials("app-creds", f.key, f.secret)
	f.app("app", "app-creds")
	f.waitReady("app", metav1.ConditionTrue, v1alpha1.ReasonTokenValid, 10*time.Second)
	const wrong = "Wr0ng!Passw0rd"
	f.uws("uws", uwsUser, wrong)
	f.session("s", "uws")
	f.waitSession("s", metav1.ConditionFalse, v1alpha1.ReasonLoginRejected, 10*time.Second)

	cm := f.clusterSessionWith(wrong, app.Name, &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{}})
	got := f.waitClusterSession(cm.Name, metav1.ConditionFalse, v1alpha1.ReasonLoginRejected)
	if n := f.logins(); n != 1 {
		t.Fatalf("logins = %d, want 1: the ClusterM2MSession sent a password the platform had refused", n)
	}
	if got.Status.ConsecutiveLoginFailures != 1 || got.Status.RejectedCredentialsVersion == "" {
		t.Fatalf("cluster session status %+v: want the username's failure and the refused credentials recorded", got.Status)
	}
	info, _ := f.sim.M2MUser(uwsUser)
	if info.ConsecutiveFailures != 1 || info.Locked {
		t.Fatalf("platform: %d consecutive failures (locked %v), want 1", info.ConsecutiveFailures, info.Locked)
	}
}

// A ClusterM2MSession whose Bearer the gateway refuses (the ClusterThingSpaceApp's token was revoked
// elsewhere) asks the broker for a new one with the cluster app's credentials, once; the new token
// reaches the cluster app, the cluster session and its consumers, with no new login.
func TestClusterSessionBearerRejectedRenewsTheClusterAppsToken(t *testing.T) {
	f, app := clusterSessionFixture(t)
	cm := f.clusterSession(app.Name, &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{}})
	f.sessionConsumer("s", cm.Name)
	f.waitConsumer("s", metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	old := clusterToken(app)
	tokens := f.tokenCalls()
	cli, err := thingspace.New(f.url, http.DefaultClient)
	must(t, err)
	must(t, cli.Revoke(ctx, thingspace.Credentials{Key: f.key, Secret: f.secret}, old))

	deadline := time.Now().Add(10 * time.Second)
	for {
		c := secretIn(t, f.ns, "s-session")
		if tok := clusterToken(app); tok != old && c != nil && string(c.Data[KeyAccessToken]) == tok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new app token never reached the consumer; cluster session: %+v", getReady(t, cm.Name))
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.waitClusterSession(cm.Name, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	if n := f.tokenCalls() - tokens; n != 1 {
		t.Errorf("%d token requests after the revoke, want 1", n)
	}
	if n := f.logins(); n != 1 {
		t.Errorf("logins = %d: a refused Bearer must not cost a login", n)
	}
}

func getReady(t *testing.T, name string) *metav1.Condition {
	cm := &v1alpha1.ClusterM2MSession{}
	must(t, k8s.Get(ctx, client.ObjectKey{Name: name}, cm))
	return meta.FindStatusCondition(cm.Status.Conditions, v1alpha1.ConditionReady)
}
