package gitops

import (
	"testing"
	"time"

	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

func TestKstatusM2MSession(t *testing.T) {
	e := newEnv(t, "kstatus-m2m")

	// Its ThingSpaceApp not there yet: InProgress, then Current once the app is.
	e.session(t, "fleet", "fleet-app", uwsUser, uwsPassword)
	waitConditions(t, e, kindSession, "fleet", "Ready=False/AppNotReady", "Reconciling=True/AppNotReady")
	res, _ := e.compute(t, kindSession, "fleet")
	wantResult(t, res, status.InProgressStatus, v1alpha1.ReasonAppNotReady)
	e.app(t, "fleet-app", appSecret)
	_, u := e.waitStatus(t, kindSession, "fleet", status.CurrentStatus)
	wantConditions(t, u, "Ready=True/SessionValid")
	wantObserved(t, u)

	// Right after a spec change, before the operator acted on it, then once it has.
	e.halt()
	specChange(t, e, &v1alpha1.M2MSession{}, "fleet", func(o client.Object) {
		o.(*v1alpha1.M2MSession).Spec.KeepAlive.Interval.Duration = 5 * time.Minute
	})
	res, _ = e.compute(t, kindSession, "fleet")
	wantResult(t, res, status.InProgressStatus, "LatestGenerationNotObserved")
	e.start(t)
	_, u = e.waitStatus(t, kindSession, "fleet", status.CurrentStatus)
	wantConditions(t, u, "Ready=True/SessionValid")
	wantObserved(t, u)

	// A refused login (another username, so this one's lockout count stays clean): Failed at once.
	e.session(t, "refused", "fleet-app", otherUser, "Wr0ng!Passw0rd")
	_, u = e.waitStatus(t, kindSession, "refused", status.FailedStatus)
	wantConditions(t, u, "Ready=False/LoginRejected", "Stalled=True/LoginRejected")
	fixSecret(t, e, "refused-credentials", v1alpha1.CredentialsKeyPassword, uwsPassword)
	_, u = e.waitStatus(t, kindSession, "refused", status.CurrentStatus)
	wantConditions(t, u, "Ready=True/SessionValid")
}

func TestKstatusCloudAuthorization(t *testing.T) {
	e := newEnv(t, "kstatus-cloud")

	// Waiting for the first consent is InProgress: a Flux rollout waits for it (up to its timeout),
	// and the consent completes it.
	e.cloud(t, "photos")
	waitConditions(t, e, kindCloud, "photos", "Authorized=False/AuthorizationPending", "Ready=False/Pending", "Reconciling=True/Pending")
	res, u := e.compute(t, kindCloud, "photos")
	wantResult(t, res, status.InProgressStatus, v1alpha1.ReasonPending)
	wantObserved(t, u)
	e.consent(t, "photos")
	_, u = e.waitStatus(t, kindCloud, "photos", status.CurrentStatus)
	wantConditions(t, u, "Authorized=True/Granted", "Ready=True/TokenValid")

	// Right after a spec change, before the operator acted on it, then once it has.
	e.halt()
	specChange(t, e, &v1alpha1.CloudAuthorization{}, "photos", func(o client.Object) { o.(*v1alpha1.CloudAuthorization).Spec.DeviceID = "server" })
	res, _ = e.compute(t, kindCloud, "photos")
	wantResult(t, res, status.InProgressStatus, "LatestGenerationNotObserved")
	e.start(t)
	_, u = e.waitStatus(t, kindCloud, "photos", status.CurrentStatus)
	wantConditions(t, u, "Authorized=True/Granted", "Ready=True/TokenValid")
	wantObserved(t, u)

	// A person refusing consent: Failed at once, with the reason.
	e.sim.SetCloudDenyConsent(true)
	e.cloud(t, "denied")
	e.consent(t, "denied")
	_, u = e.waitStatus(t, kindCloud, "denied", status.FailedStatus)
	wantConditions(t, u, "Authorized=False/AccessDenied", "Ready=False/AccessDenied", "Stalled=True/AccessDenied")
}
