package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels, annotations and finalizers the operator reads or writes. They are part of the public contract:
// users, dashboards and GitOps tooling match on them.
const (
	// ManagedByLabel marks every Secret the operator writes; only Secrets with this label are cached
	// by the manager, and a Secret without it is never overwritten.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel on Secrets written by this operator.
	ManagedByValue = "thingspace-operator"

	// RefreshRequestedAnnotation asks for an immediate refresh: every new value (a timestamp, say)
	// triggers exactly one refresh.
	RefreshRequestedAnnotation = "thingspace.credops.io/refresh-requested"

	// RevokeFinalizer holds a ThingSpaceApp with revokeOnDelete until its token is revoked.
	RevokeFinalizer = "thingspace.credops.io/revoke-on-delete"

	// LogoutFinalizer holds an M2MSession with logoutOnDelete until its session is logged out.
	LogoutFinalizer = "thingspace.credops.io/logout-on-delete"
)

// Condition types. Ready is the operator's verdict; Stalled and Reconciling follow the kstatus
// conventions (sigs.k8s.io/cli-utils/pkg/kstatus) that Flux and Argo CD read, and are "abnormal-true":
// present only while True, removed otherwise. policy.DecideProgress derives both from Ready.
const (
	// ConditionReady is True while the target Secret holds a valid credential for the current
	// generation; Unknown until the operator knows (from its first pass over a generation); False with
	// the reason otherwise.
	ConditionReady = "Ready"
	// ConditionStalled is True, with Ready's reason and message, while Ready is False for a reason only a
	// person can clear (policy.TerminalReasons): the operator sends nothing upstream until the spec or
	// a referenced Secret changes. kstatus reads it as Failed.
	ConditionStalled = "Stalled"
	// ConditionReconciling is True while a new generation is being acted on and has reached neither
	// Ready=True nor a terminal state. Routine refreshes, rotations and keep-alives never set it.
	// kstatus reads it as InProgress.
	ConditionReconciling = "Reconciling"
	// ConditionOverlap is on a ThingSpaceApp (or ClusterThingSpaceApp) with a standby key set: True
	// (reason HandoverScheduled) while the next token will be published handoverBefore before the current
	// one expires, False while that overlap is lost (reasons StandbyCredentialsNotFound,
	// StandbyCredentialsRejected, StandbyUnavailable): the token is then renewed at expiry with the
	// active key set, and Ready is not affected. Absent without a standby key set.
	ConditionOverlap = "Overlap"
)

// Condition reasons. Users and alerts match on them; keep the spelling.
const (
	// ReasonTokenValid: the Secret holds a valid token and the last refresh succeeded.
	ReasonTokenValid = "TokenValid"
	// ReasonRefreshFailing: the Secret still holds a valid token, but the last refresh failed with a
	// transient error; the operator retries with backoff before the token expires.
	ReasonRefreshFailing = "RefreshFailing"
	// ReasonPending: no token has been issued yet.
	ReasonPending = "Pending"
	// ReasonUpstreamUnavailable: no valid token, and the upstream answered with a transient error.
	ReasonUpstreamUnavailable = "UpstreamUnavailable"
	// ReasonCredentialsRejected: the upstream rejected the credentials; nothing is retried until the
	// credentials Secret or the spec changes.
	ReasonCredentialsRejected = "CredentialsRejected"
	// ReasonCredentialsNotFound: the credentials Secret or one of its keys is missing.
	ReasonCredentialsNotFound = "CredentialsNotFound"
	// ReasonRequestInvalid: the upstream refused the request as malformed (for example a scope it does
	// not know); nothing is retried until the spec or credentials change.
	ReasonRequestInvalid = "RequestInvalid"
	// ReasonSecretConflict: a Secret with the target name exists and is not managed by this object.
	ReasonSecretConflict = "SecretConflict"
	// ReasonLoginRejected: the platform refused the UWS login; no login is attempted again until the
	// credentials Secret changes (5 failures lock the username).
	ReasonLoginRejected = "LoginRejected"
	// ReasonInvalidCredentials: the UWS username or password breaks the platform's rules (length or a
	// forbidden character); no login is attempted with it.
	ReasonInvalidCredentials = "InvalidCredentials"
	// ReasonSessionValid: the Secret holds a live session and a valid app token.
	ReasonSessionValid = "SessionValid"
	// ReasonAppNotReady: the referenced ThingSpaceApp is missing or holds no valid token.
	ReasonAppNotReady = "AppNotReady"
	// ReasonPasswordNotStored: a password reset succeeded but the new password could not be written to
	// the credentials Secret yet; the operator keeps retrying the write before anything else.
	ReasonPasswordNotStored = "PasswordNotStored"
	// ReasonPasswordLost: a password reset got no usable answer and a login with the previous password
	// was then refused: the platform changed the password and the new one is lost. A person must reset it
	// in ThingSpace and update the credentials Secret; no login is attempted until that Secret changes.
	ReasonPasswordLost = "PasswordLost"
	// ReasonBearerRejected: the gateway refused the ThingSpaceApp's token on a session call; the operator
	// asked for a new app token at most once and retries with backoff.
	ReasonBearerRejected = "BearerRejected"
	// ReasonInvalidEndpoint: the endpoint cannot be used (plain http without --allow-insecure-endpoints,
	// or an unusable CA bundle).
	ReasonInvalidEndpoint = "InvalidEndpoint"
	// ReasonEndpointNotAllowed: the endpoint's host (and port) is not in the manager's
	// --allowed-endpoint-hosts; nothing is sent there (no token request, login, refresh, revoke or
	// logout) until the spec changes or the manager restarts with another list.
	ReasonEndpointNotAllowed = "EndpointNotAllowed"
	// ReasonNotAllowed: the referenced cluster-scoped credential does not allow this namespace (its
	// spec.allowedNamespaces); no Secret is written.
	ReasonNotAllowed = "NotAllowed"

	// Reasons of the Overlap condition (ConditionOverlap).

	// ReasonHandoverScheduled: the other key set's token will be published at status.nextHandoverTime.
	ReasonHandoverScheduled = "HandoverScheduled"
	// ReasonStandbyCredentialsNotFound: the standby credentials Secret or one of its keys is missing.
	ReasonStandbyCredentialsNotFound = "StandbyCredentialsNotFound"
	// ReasonStandbyCredentialsRejected: the upstream rejected the standby key set; nothing is sent with
	// it until its Secret or the spec changes.
	ReasonStandbyCredentialsRejected = "StandbyCredentialsRejected"
	// ReasonStandbyUnavailable: fetching the other key set's token failed with a transient error; the
	// operator retries with backoff until the active token expires, then renews with the active key set.
	ReasonStandbyUnavailable = "StandbyUnavailable"
)

// LocalSecretReference names a Secret in the same namespace as the referring object.
type LocalSecretReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// NameOrEmpty is the referenced name, "" for no reference (an object consuming a cluster-scoped one).
func (r *LocalSecretReference) NameOrEmpty() string {
	if r == nil {
		return ""
	}
	return r.Name
}

// SecretTemplate holds metadata stamped on the Secret the operator writes.
type SecretTemplate struct {
	// labels added to the written Secret. The app.kubernetes.io/managed-by key and every key under
	// thingspace.credops.io/ are the operator's and refused.
	// +kubebuilder:validation:XValidation:rule="!('app.kubernetes.io/managed-by' in self)",message="the app.kubernetes.io/managed-by label is reserved for the operator"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('thingspace.credops.io/'))",message="keys under thingspace.credops.io/ are reserved for the operator"
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// annotations added to the written Secret. As for labels, the app.kubernetes.io/managed-by key and
	// every key under thingspace.credops.io/ (the operator's bookkeeping, such as the refresh marker)
	// are refused: a copy set through the template would be read as the operator's own.
	// +kubebuilder:validation:XValidation:rule="!('app.kubernetes.io/managed-by' in self)",message="the app.kubernetes.io/managed-by key is reserved for the operator"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('thingspace.credops.io/'))",message="keys under thingspace.credops.io/ are reserved for the operator"
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RefreshStatus is the renewal bookkeeping shared by the kinds that keep a token valid by refreshing it.
type RefreshStatus struct {
	// expiresAt is when the (access) token in the Secret expires.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// renewalTime is the next planned upstream call: a renewal, or the next retry after a failure.
	// +optional
	RenewalTime *metav1.Time `json:"renewalTime,omitempty"`

	// lastRefreshTime is when the token in the Secret was obtained.
	// +optional
	LastRefreshTime *metav1.Time `json:"lastRefreshTime,omitempty"`

	// failedRefreshAttempts counts consecutive failed refreshes; it drives the backoff and resets on success.
	// +optional
	FailedRefreshAttempts int32 `json:"failedRefreshAttempts,omitempty"`

	// lastFailureTime is when the last refresh failed.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`

	// rejectedCredentialsVersion is the resourceVersion of the credentials Secret the upstream rejected.
	// Nothing is sent upstream again until the Secret's resourceVersion differs or the spec changes.
	// +optional
	RejectedCredentialsVersion string `json:"rejectedCredentialsVersion,omitempty"`

	// observedRefreshRequest is the last value of the thingspace.credops.io/refresh-requested annotation
	// that was acted on.
	// +optional
	ObservedRefreshRequest string `json:"observedRefreshRequest,omitempty"`
}
