package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// M2MSessionSpec asks for a Connectivity Management (UWS) session kept alive in a Secret.
// +kubebuilder:validation:XValidation:rule="!has(self.credentialsSecretRef) || self.secretName != self.credentialsSecretRef.name",message="secretName must differ from credentialsSecretRef.name: the operator never writes session data into the credentials Secret"
// +kubebuilder:validation:XValidation:rule="has(self.clusterSessionRef) != has(self.credentialsSecretRef)",message="exactly one of credentialsSecretRef (UWS credentials of this namespace) and clusterSessionRef (a ClusterM2MSession shared with it) must be set"
// +kubebuilder:validation:XValidation:rule="has(self.clusterSessionRef) != has(self.appRef)",message="appRef is required with credentialsSecretRef and exclusive with clusterSessionRef: the ClusterM2MSession names its own app"
// +kubebuilder:validation:XValidation:rule="!has(self.clusterSessionRef) || !has(self.passwordRotation)",message="clusterSessionRef is exclusive with passwordRotation: the ClusterM2MSession rotates its own password"
type M2MSessionSpec struct {
	// appRef names the ThingSpaceApp (for a ClusterM2MSession: the ClusterThingSpaceApp) whose current
	// token is the Bearer for login and every session call; its endpoint is the session's endpoint.
	// Required with credentialsSecretRef; exclusive with clusterSessionRef.
	// +optional
	AppRef *LocalObjectReference `json:"appRef,omitempty"`

	// credentialsSecretRef names a Secret with data keys `username` and `password` (the UWS
	// credentials), in the object's namespace (for a ClusterM2MSession: the manager's
	// --cluster-resource-namespace). With passwordRotation, the operator writes the new password into it.
	// Exclusive with clusterSessionRef.
	// +optional
	CredentialsSecretRef *LocalSecretReference `json:"credentialsSecretRef,omitempty"`

	// clusterSessionRef names a ClusterM2MSession whose session (and app token) the operator copies into
	// secretName, when the ClusterM2MSession allows this namespace (spec.allowedNamespaces); otherwise
	// Ready is False with reason NotAllowed and no Secret is written. No login is made for this object:
	// the ClusterM2MSession's one session serves every consumer. keepAlive is the ClusterM2MSession's
	// too. Exclusive with appRef, credentialsSecretRef and passwordRotation.
	// +optional
	ClusterSessionRef *ClusterObjectReference `json:"clusterSessionRef,omitempty"`

	// secretName is the Secret the operator writes, in the object's namespace (for a ClusterM2MSession:
	// the --cluster-resource-namespace): data keys `session_token`,
	// `access_token` (the app's current token) and `access_token_expires_at`. It cannot be changed.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="secretName is immutable"
	// +required
	SecretName string `json:"secretName"`

	// secretTemplate holds labels and annotations stamped on the written Secret.
	// +optional
	SecretTemplate *SecretTemplate `json:"secretTemplate,omitempty"`

	// keepAlive says how the session is kept from idling out (ThingSpace ends it after 20 minutes
	// without use).
	// +kubebuilder:default={}
	// +optional
	KeepAlive KeepAliveSpec `json:"keepAlive,omitempty"`

	// logoutOnDelete logs the session out when the M2MSession is deleted.
	// +kubebuilder:default=true
	// +optional
	LogoutOnDelete *bool `json:"logoutOnDelete,omitempty"`

	// passwordRotation, when set, resets the UWS password on a schedule and writes the new password into
	// the credentials Secret before anything else.
	// +optional
	PasswordRotation *PasswordRotationSpec `json:"passwordRotation,omitempty"`
}

// KeepAliveSpec configures the keep-alive.
type KeepAliveSpec struct {
	// interval between keep-alives (or re-logins without an accountName): any positive duration under
	// 20m, the platform's idle timeout. Default 10m.
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) < duration('20m')",message="keepAlive.interval must be positive and under 20m (the platform's idle timeout)"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`

	// accountName, when set, keeps the session alive with a read of this account
	// (GET /api/m2m/v1/accounts/{accountName}), so one login lasts. Without it, the operator logs in
	// again before the idle timeout and leaves the old session to idle out.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._-]*$`
	// +optional
	AccountName string `json:"accountName,omitempty"`
}

// PasswordRotationSpec configures password rotation.
type PasswordRotationSpec struct {
	// interval between password resets: any positive duration (Verizon recommends 90 days, "2160h").
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="passwordRotation.interval must be a positive duration"
	// +required
	Interval metav1.Duration `json:"interval"`
}

// LocalObjectReference names an object of a known kind in the same namespace.
type LocalObjectReference struct {
	// name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// NameOrEmpty is the referenced name, "" for no reference (a session consuming a ClusterM2MSession).
func (r *LocalObjectReference) NameOrEmpty() string {
	if r == nil {
		return ""
	}
	return r.Name
}

// M2MSessionStatus is what the operator observed.
type M2MSessionStatus struct {
	// observedGeneration is the metadata.generation the operator last acted on. Until it equals
	// metadata.generation the status describes an older spec (kstatus: InProgress). A new object's
	// status defaults to observedGeneration 0, so before the operator's first pass it reads as
	// InProgress too, not as a resource without status (which kstatus calls Current).
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: `Ready` is True while the Secret holds a live session and a valid app token.
	// `Stalled` (True, with Ready's reason, while only a person can fix it) and `Reconciling` (True while a
	// new generation is being acted on) follow the kstatus conventions Flux and Argo CD read.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// lastLoginTime is when the session in the Secret was obtained.
	// +optional
	LastLoginTime *metav1.Time `json:"lastLoginTime,omitempty"`

	// loginTokenDigest identifies the app token the session in the Secret logged in with: a SHA-256
	// digest, never the token. When the app publishes another token while that one is still valid (a
	// handover to a standby key set), the session logs in again with the new token, so that the Secret
	// changes both headers in one write (a platform may tie a session to the token that logged in).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	LoginTokenDigest string `json:"loginTokenDigest,omitempty"`

	// loginTokenExpiresAt is when the app token the session logged in with expires.
	// +optional
	LoginTokenExpiresAt *metav1.Time `json:"loginTokenExpiresAt,omitempty"`

	// lastKeepAliveTime is when the session was last used to keep it alive.
	// +optional
	LastKeepAliveTime *metav1.Time `json:"lastKeepAliveTime,omitempty"`

	// nextKeepAliveTime is when the next keep-alive (or re-login) is planned.
	// +optional
	NextKeepAliveTime *metav1.Time `json:"nextKeepAliveTime,omitempty"`

	// consecutiveLoginFailures counts the username's logins the platform refused since its last successful
	// one, from any session. Five lock the username; the operator never lets this pass two by itself.
	// +optional
	ConsecutiveLoginFailures int32 `json:"consecutiveLoginFailures,omitempty"`

	// loginFailuresObservedAt is when consecutiveLoginFailures was observed: the last refused login, or the
	// success (of any session of the username) that reset the count. Every session of a username keeps a
	// copy; the latest observation wins, so a stale copy never brings back failures a success cleared.
	// +optional
	LoginFailuresObservedAt *metav1.Time `json:"loginFailuresObservedAt,omitempty"`

	// rejectedCredentialsVersion is the resourceVersion of the credentials Secret whose login was
	// refused. No login is attempted again until the Secret changes.
	// +optional
	RejectedCredentialsVersion string `json:"rejectedCredentialsVersion,omitempty"`

	// passwordRotatedAt is when the operator last reset the password, or sent a reset whose answer was
	// lost (the next reset is an interval later either way).
	// +optional
	PasswordRotatedAt *metav1.Time `json:"passwordRotatedAt,omitempty"`

	// passwordRotationRejectedVersion is the resourceVersion of the credentials Secret whose password
	// reset the platform refused. No reset is attempted again until the Secret changes.
	// +optional
	PasswordRotationRejectedVersion string `json:"passwordRotationRejectedVersion,omitempty"`

	// passwordResetUnanswered records a password reset that may have reached the platform without a
	// usable answer: a timeout or a cut connection after the request was sent, or a 2xx without a readable
	// new password. While it stands no reset is sent, and one login with the password the reset replaced
	// settles whether the platform applied it.
	// +optional
	PasswordResetUnanswered *UnansweredPasswordReset `json:"passwordResetUnanswered,omitempty"`

	// failedAttempts counts consecutive transient failures (network, 5xx, 429); it drives the backoff.
	// +optional
	FailedAttempts int32 `json:"failedAttempts,omitempty"`

	// rejectedTokenDigest identifies the app token the gateway refused on the last session call (a
	// SHA-256 digest, never the token) while Ready says BearerRejected: the backoff is for that token, so
	// the app publishing another one ends it at once.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	RejectedTokenDigest string `json:"rejectedTokenDigest,omitempty"`

	// observedRefreshRequest is the last value of the thingspace.credops.io/refresh-requested annotation
	// acted on (a forced new login).
	// +optional
	ObservedRefreshRequest string `json:"observedRefreshRequest,omitempty"`

	// observedCredentialsVersion is the resourceVersion of the credentials Secret last checked against
	// the UWS rules (so a weak-password warning is emitted once per change).
	// +optional
	ObservedCredentialsVersion string `json:"observedCredentialsVersion,omitempty"`
}

// UnansweredPasswordReset is a password reset whose outcome is unknown, or known to have lost the
// password.
type UnansweredPasswordReset struct {
	// sentAt is when the reset was sent.
	// +required
	SentAt metav1.Time `json:"sentAt"`

	// credentialsVersion is the resourceVersion of the credentials Secret whose password the reset sent as
	// the old one. A change of that Secret voids the record.
	// +required
	CredentialsVersion string `json:"credentialsVersion"`

	// lost is set once a login with that password was refused: the platform applied the reset and its new
	// password is lost. No login is attempted until the credentials Secret changes.
	// +optional
	Lost bool `json:"lost,omitempty"`
}

// M2MSession keeps a ThingSpace Connectivity Management (UWS) session alive in a Secret.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=m2m,categories=thingspace
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.spec.secretName`
// +kubebuilder:printcolumn:name="Last Login",type=date,JSONPath=`.status.lastLoginTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type M2MSession struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec M2MSessionSpec `json:"spec"`
	// status is the observed state.
	// +optional
	// +kubebuilder:default={observedGeneration: 0}
	Status M2MSessionStatus `json:"status,omitempty"`
}

// M2MSessionList is a list of M2MSession.
// +kubebuilder:object:root=true
type M2MSessionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []M2MSession `json:"items"`
}

func init() {
	SchemeBuilder.Register(&M2MSession{}, &M2MSessionList{})
}
