package fakeclock

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// A session's Secret follows its app's new token without waiting for the app's Secret to come back
// or its status to come back through the watch (package announce). The chaos suite saw the writes in a
// row under slow API writes (the app's Secret, its status, then the session's Secret): a keep-alive
// session's dead copy outlived the app's own by 1-2 s. Here every event of Secrets and ThingSpaceApps
// reaches the manager's cache only after secretLag, so a session that followed through the watches
// alone would still hold the revoked token when the check gives up.
func TestM2MSessionFollowsTheAppsNewTokenBeforeTheWatchShowsIt(t *testing.T) {
	const secretLag = 15 * time.Second
	// The app's token dies before the session's next keep-alive (10 minutes) is due.
	f := newFixture(t, simulator.Config{TokenLifetime: 5 * time.Minute})
	m2mWorld(f)
	f.create(newSession("s"))
	sess := &v1alpha1.M2MSession{}
	f.waitCondition("s", sess, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSessionValid)
	f.settle(300 * time.Millisecond)
	old, expires := f.appToken("app")
	logins := f.sim.Stats().Total(loginRoute)

	for _, r := range []string{"secrets", "thingspaceapps"} {
		f.api.lag(r, secretLag)
		t.Cleanup(func() { f.api.lag(r, 0) })
	}
	f.stepTo(expires)
	var fresh string
	f.eventually("the app's new token", secretLag/3, func() bool {
		fresh, _ = f.appToken("app")
		return fresh != "" && fresh != old
	})
	f.eventually("the session's Secret on the app's new token", secretLag/3, func() bool { return f.current("s-session").bearer == fresh })
	if p := f.current("s-session"); !f.works(p) {
		t.Fatal("the Secret's pair does not work")
	}
	if n := f.sim.Stats().Total(loginRoute) - logins; n != 0 {
		t.Fatalf("%d logins to follow the app's token, want 0", n)
	}
}
