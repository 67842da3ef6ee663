package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultThingSpaceEndpoint is Verizon's production ThingSpace host.
const DefaultThingSpaceEndpoint = "https://thingspace.verizon.com"

// ThingSpaceAppSpec is what the user asks for: keep an OAuth2 app token (client-credentials grant) for
// one ThingSpace app key valid in a Secret.
// +kubebuilder:validation:XValidation:rule="!has(self.credentialsSecretRef) || self.secretName != self.credentialsSecretRef.name",message="secretName must differ from credentialsSecretRef.name: the operator never writes into the credentials Secret"
// +kubebuilder:validation:XValidation:rule="has(self.clusterAppRef) != has(self.credentialsSecretRef)",message="exactly one of credentialsSecretRef (an app key of this namespace) and clusterAppRef (a ClusterThingSpaceApp shared with it) must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.clusterAppRef) || (!has(self.endpoint) && !has(self.caBundle) && !has(self.scope) && !has(self.renewBefore) && !self.revokeOnDelete)",message="clusterAppRef is exclusive with endpoint, caBundle, scope, renewBefore and revokeOnDelete: the ClusterThingSpaceApp decides them"
// +kubebuilder:validation:XValidation:rule="!has(self.clusterAppRef) || (!has(self.standbyCredentialsSecretRef) && !has(self.handoverBefore))",message="clusterAppRef is exclusive with standbyCredentialsSecretRef and handoverBefore: the ClusterThingSpaceApp decides them"
// +kubebuilder:validation:XValidation:rule="!has(self.renewBefore) || (!has(self.standbyCredentialsSecretRef) && !has(self.handoverBefore))",message="renewBefore is exclusive with standbyCredentialsSecretRef and handoverBefore: with a standby key set the operator hands over to a fresh token without revoking, renewBefore revokes"
// +kubebuilder:validation:XValidation:rule="!has(self.handoverBefore) || has(self.standbyCredentialsSecretRef)",message="handoverBefore needs standbyCredentialsSecretRef: a handover fetches the next token with the other key set"
// +kubebuilder:validation:XValidation:rule="!has(self.standbyCredentialsSecretRef) || !has(self.credentialsSecretRef) || self.standbyCredentialsSecretRef.name != self.credentialsSecretRef.name",message="standbyCredentialsSecretRef must name another Secret than credentialsSecretRef: it holds the second key set"
// +kubebuilder:validation:XValidation:rule="!has(self.standbyCredentialsSecretRef) || self.secretName != self.standbyCredentialsSecretRef.name",message="secretName must differ from standbyCredentialsSecretRef.name: the operator never writes into a credentials Secret"
type ThingSpaceAppSpec struct {
	// endpoint is the ThingSpace base URL; empty means https://thingspace.verizon.com. Plain http:// is
	// refused unless the manager runs with --allow-insecure-endpoints (tests, the simulator). Its host
	// must be in the manager's --allowed-endpoint-hosts, or nothing is sent (Ready=False,
	// EndpointNotAllowed).
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || url(self).getScheme() == 'http')",message="endpoint must be an absolute http or https URL"
	// +kubebuilder:validation:XValidation:rule="url(self).getQuery().size() == 0 && !self.contains('#')",message="endpoint must not carry a query or fragment"
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// caBundle is a PEM bundle of CA certificates trusted for the endpoint instead of the system roots,
	// at most 64 KiB (some 40 certificates: a private CA's chain is a few KiB, and the system roots need
	// no bundle). It is used only for an endpoint the manager allows (--allowed-endpoint-hosts).
	// +kubebuilder:validation:MaxLength=87384
	// +kubebuilder:validation:XValidation:rule="size(self) <= 65536",message="caBundle must be at most 64 KiB of PEM"
	// +optional
	CABundle []byte `json:"caBundle,omitempty"`

	// credentialsSecretRef names a Secret with data keys `key` and `secret`: the app's Key and Secret from
	// ThingSpace Key Management. It is in the object's namespace (for a ClusterThingSpaceApp: the manager's
	// --cluster-resource-namespace). Exclusive with clusterAppRef.
	// +optional
	CredentialsSecretRef *LocalSecretReference `json:"credentialsSecretRef,omitempty"`

	// clusterAppRef names a ClusterThingSpaceApp whose token the operator copies into secretName, when the
	// ClusterThingSpaceApp allows this namespace (spec.allowedNamespaces); otherwise Ready is False with
	// reason NotAllowed and no Secret is written. No upstream call is made for this object: the
	// ClusterThingSpaceApp's one token serves every consumer. Exclusive with credentialsSecretRef,
	// endpoint, caBundle, scope, renewBefore and revokeOnDelete.
	// +optional
	ClusterAppRef *ClusterObjectReference `json:"clusterAppRef,omitempty"`

	// standbyCredentialsSecretRef names a Secret with a second key set of the same app (data keys `key`
	// and `secret`, from another key set in ThingSpace Key Management; each key set has its own token).
	// With it the operator hands over between the two key sets instead of waiting for expiry:
	// handoverBefore before the published token expires, it fetches a fresh token with the other key set
	// and publishes it, and the replaced token stays valid for every reader that has not seen the update
	// yet (a mounted Secret file lags by up to ~90 s). Nothing is revoked. If the standby key set is
	// missing or refused, the active token is untouched, the Overlap condition says the overlap is lost,
	// and the token is renewed at expiry with the active key set. In the object's namespace (for a
	// ClusterThingSpaceApp: the --cluster-resource-namespace). Exclusive with renewBefore and
	// clusterAppRef.
	// +optional
	StandbyCredentialsSecretRef *LocalSecretReference `json:"standbyCredentialsSecretRef,omitempty"`

	// handoverBefore is how long before the published token expires the operator publishes the other
	// key set's token (default 5m): the time every reader has to pick up the new token while the old one
	// still works. It must be longer than the slowest reader's lag (a mounted file: up to ~90 s) and is
	// used as at most a third of the token's lifetime, so that the other key set's previous token has
	// expired and a fresh one is issued. Needs standbyCredentialsSecretRef; exclusive with renewBefore.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) < duration('30m')",message="handoverBefore must be a positive duration under 30m (half the one-hour token lifetime)"
	// +optional
	HandoverBefore *metav1.Duration `json:"handoverBefore,omitempty"`

	// scope is sent with the token request when set (space separated).
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Scope string `json:"scope,omitempty"`

	// secretName is the Secret the operator writes, in the object's namespace (for a ClusterThingSpaceApp:
	// the --cluster-resource-namespace): data keys `access_token`,
	// `token_type` and `expires_at` (RFC 3339, UTC). It cannot be changed after creation.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="secretName is immutable"
	// +required
	SecretName string `json:"secretName"`

	// secretTemplate holds labels and annotations stamped on the written Secret.
	// +optional
	SecretTemplate *SecretTemplate `json:"secretTemplate,omitempty"`

	// renewBefore makes the operator revoke the token and fetch a new one this long before it expires
	// (any positive duration, for example "10m" or "5s"). Unset, a new token is fetched when the current
	// one expires, because ThingSpace returns the same token until then. A revoke ends the token for every
	// holder of the app key, including workloads outside this cluster. When renewBefore is not shorter
	// than the token's lifetime, the token is renewed at two thirds of its lifetime instead.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="renewBefore must be a positive duration"
	// +optional
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`

	// revokeOnDelete revokes the current token when the ThingSpaceApp is deleted. The revoke ends the
	// token for every holder of the app key, so it is skipped (with a RevokeSkipped event) while another
	// ThingSpaceApp or M2MSession still holds the token.
	// +kubebuilder:default=false
	// +optional
	RevokeOnDelete bool `json:"revokeOnDelete,omitempty"`
}

// ThingSpaceAppStatus is what the operator observed.
type ThingSpaceAppStatus struct {
	// observedGeneration is the metadata.generation the operator last acted on. Until it equals
	// metadata.generation the status describes an older spec (kstatus: InProgress). A new object's
	// status defaults to observedGeneration 0, so before the operator's first pass it reads as
	// InProgress too, not as a resource without status (which kstatus calls Current).
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: `Ready` is True while the Secret holds a token that has not expired. Its reason and
	// message carry the last refresh failure.
	// `Stalled` (True, with Ready's reason, while only a person can fix it) and `Reconciling` (True while a
	// new generation is being acted on) follow the kstatus conventions Flux and Argo CD read.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	RefreshStatus `json:",inline"`

	// activeKeySet says which key set issued the token in the Secret when spec.standbyCredentialsSecretRef
	// is set: Primary (credentialsSecretRef) or Standby (standbyCredentialsSecretRef). Empty without a
	// standby key set.
	// +kubebuilder:validation:Enum=Primary;Standby
	// +optional
	ActiveKeySet string `json:"activeKeySet,omitempty"`

	// nextHandoverTime is when the operator next fetches the other key set's token to publish it:
	// handoverBefore before expiresAt, or, while Overlap=False with reason StandbyUnavailable, the next
	// try (after a transient failure, or once the other key's token of the hour has expired). Always
	// before expiresAt. Unset when no handover is planned for the published token (standby missing or
	// refused, or no fresh token possible before expiry: it is renewed at expiry with the active key set)
	// or without a standby key set.
	// +optional
	NextHandoverTime *metav1.Time `json:"nextHandoverTime,omitempty"`

	// rejectedStandbyCredentialsVersion is the resourceVersion of the standby credentials Secret the
	// upstream rejected. Nothing is sent with the standby key set again until that Secret's
	// resourceVersion differs or the spec changes.
	// +optional
	RejectedStandbyCredentialsVersion string `json:"rejectedStandbyCredentialsVersion,omitempty"`
}

// Key sets of a ThingSpaceApp with a standby key set (status.activeKeySet).
const (
	// KeySetPrimary is spec.credentialsSecretRef's key set.
	KeySetPrimary = "Primary"
	// KeySetStandby is spec.standbyCredentialsSecretRef's key set.
	KeySetStandby = "Standby"
)

// DefaultHandoverBefore is spec.handoverBefore when unset.
const DefaultHandoverBefore = 5 * time.Minute

// ThingSpaceApp keeps a ThingSpace OAuth2 app token valid in a Secret.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tsapp,categories=thingspace
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.spec.secretName`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`,description="When the token in the Secret expires (a future date prints as <invalid> in a date column)"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ThingSpaceApp struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec ThingSpaceAppSpec `json:"spec"`
	// status is the observed state.
	// +kubebuilder:default={observedGeneration: 0}
	// +optional
	Status ThingSpaceAppStatus `json:"status,omitempty"`
}

// ThingSpaceAppList is a list of ThingSpaceApp.
// +kubebuilder:object:root=true
type ThingSpaceAppList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ThingSpaceApp `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ThingSpaceApp{}, &ThingSpaceAppList{})
}
