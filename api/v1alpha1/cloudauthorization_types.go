package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultCloudEndpoint is Verizon's production Personal Cloud Storage API base.
const DefaultCloudEndpoint = "https://api.cloudapi.verizon.com/cloud/1"

// CloudAuthorization condition types, besides Ready.
const (
	// ConditionAuthorized is True while the operator holds a refresh token it can use: a person
	// consented (or a refresh token was supplied) and the upstream has not refused it since.
	ConditionAuthorized = "Authorized"
)

// CloudAuthorization condition reasons. Users and alerts match on them; keep the spelling.
const (
	// ReasonGranted: the operator holds a usable refresh token.
	ReasonGranted = "Granted"
	// ReasonAuthorizationPending: nobody has consented yet; open the link in the consent Secret
	// (status.consentSecretName), or put an existing refresh token under `refresh_token` in the grant
	// Secret (`<name>-grant`).
	ReasonAuthorizationPending = "AuthorizationPending"
	// ReasonAccessDenied: the person refused consent; a new link is in the consent Secret.
	ReasonAccessDenied = "AccessDenied"
	// ReasonReauthorizationRequired: the refresh token was refused (revoked, expired, already rotated)
	// or a refresh was interrupted before its answer was stored; a person must consent again.
	ReasonReauthorizationRequired = "ReauthorizationRequired"
	// ReasonAuthorizationFailed: Verizon answered the consent with an error other than access_denied; a
	// new link is in the consent Secret.
	ReasonAuthorizationFailed = "AuthorizationFailed"
	// ReasonCodeExchangeFailed: the callback arrived but exchanging its code failed; a new link is in
	// the consent Secret.
	ReasonCodeExchangeFailed = "CodeExchangeFailed"
	// ReasonGrantNotStored (Authorized=False, Ready=False): consent arrived and its code was exchanged,
	// but the Secret could not be written yet; the operator keeps the tokens in memory and stores them
	// before anything else once it can. A restart before then loses them (consent is asked for again).
	ReasonGrantNotStored = "GrantNotStored"
	// ReasonRefreshTokenAtRisk (Authorized=True): refreshes keep failing past the keep-alive time, and
	// the refresh token dies if none succeeds before the deadline the message gives.
	ReasonRefreshTokenAtRisk = "RefreshTokenAtRisk"
	// EventAuthorized (a Normal event): consent arrived and the tokens were written. CloudAuthorizations
	// also emit EventRefreshed, EventRefreshFailed, EventLifetimeAssumed and EventLifetimeCapped (see
	// thingspaceapp_contract.go), and the reasons above as Warning events.
	EventAuthorized = "Authorized"
)

// Annotations the operator keeps on a CloudAuthorization's Secret. They are bookkeeping, not
// configuration: workloads read the data keys.
const (
	// RefreshStartedAnnotation is written, and confirmed by the API server, before a refresh token is
	// sent; the write that stores the answer removes it. Finding it later means a refresh may have
	// reached Verizon without its answer being stored, so that refresh token is never sent again.
	RefreshStartedAnnotation = "thingspace.credops.io/refresh-started-at"
	// RefreshedAtAnnotation is when the tokens in the Secret were obtained (RFC 3339, UTC).
	RefreshedAtAnnotation = "thingspace.credops.io/refreshed-at"
	// AdoptAnnotation, set to "true" by its owner on a Secret the operator did not create, hands that
	// Secret over: the operator takes it (label, ownerRef, so it is garbage-collected with the
	// CloudAuthorization) and rewrites its data. Without it such a Secret is never changed.
	AdoptAnnotation = "thingspace.credops.io/adopt"
)

// The Secrets a CloudAuthorization has besides secretName, named after it.
const (
	// ConsentSecretSuffix: `<name>-consent` holds the consent link (SecretKeyAuthorizationURL) while
	// consent is needed. Whoever can read it can consent; viewers of the custom resource cannot.
	ConsentSecretSuffix = "-consent"
	// GrantSecretSuffix: `<name>-grant` holds the grant (refresh_token, and the operator's record of
	// the access token); workloads mount secretName, which never holds a refresh token. To bootstrap
	// from a refresh token obtained elsewhere, create it with `refresh_token` and AdoptAnnotation.
	GrantSecretSuffix = "-grant"
	// SecretKeyAuthorizationURL is the consent Secret's data key: the operator's start link
	// (`…/oauth2/start?state=…`), which sets a cookie in the browser and redirects to Verizon.
	SecretKeyAuthorizationURL = "authorization_url"
)

// ConsentSecretName is the name of ca's consent Secret.
func ConsentSecretName(ca *CloudAuthorization) string { return ca.Name + ConsentSecretSuffix }

// GrantSecretName is the name of ca's grant Secret.
func GrantSecretName(ca *CloudAuthorization) string { return ca.Name + GrantSecretSuffix }

// CloudAuthorizationSpec is what the user asks for: obtain a person's consent for a Verizon Cloud app
// (OAuth2 authorization code) and keep its access token valid in a Secret, refreshing it with the
// rotating refresh token.
// +kubebuilder:validation:XValidation:rule="self.secretName != self.credentialsSecretRef.name",message="secretName must differ from credentialsSecretRef.name: the operator never writes into the credentials Secret"
type CloudAuthorizationSpec struct {
	// endpoint is the Verizon Cloud API base URL, including its path. Plain http:// is refused unless
	// the manager runs with --allow-insecure-endpoints (tests, the simulator). Its host must be in the
	// manager's --allowed-endpoint-hosts, or nothing is sent (Ready=False, EndpointNotAllowed).
	// +kubebuilder:default="https://api.cloudapi.verizon.com/cloud/1"
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

	// credentialsSecretRef names a Secret in the same namespace with data keys `key` and `secret`: the
	// app's Key (the OAuth2 client_id) and Secret from ThingSpace Key Management.
	// +required
	CredentialsSecretRef LocalSecretReference `json:"credentialsSecretRef"`

	// callbackURL is the Callback URL registered for the app in Key Management. It is sent verbatim as
	// redirect_uri (Verizon compares it case-sensitively) and must reach the manager's
	// /oauth2/callback endpoint (see --oauth-callback-bind-address). It must be https:// unless the
	// manager runs with --allow-insecure-endpoints (Ready=False, InvalidEndpoint): the authorization
	// code travels to it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || url(self).getScheme() == 'http')",message="callbackURL must be an absolute http or https URL"
	// +kubebuilder:validation:XValidation:rule="!self.contains('#')",message="callbackURL must not carry a fragment"
	// +required
	CallbackURL string `json:"callbackURL"`

	// deviceID is sent as `deviceid` when set: Verizon needs it when one client id serves several device
	// types. Keep it stable.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	DeviceID string `json:"deviceID,omitempty"`

	// secretName is the Secret workloads mount, written by the operator in the same namespace: data
	// keys `access_token`, `token_type` and `expires_at` (RFC 3339, UTC), never the refresh token (that
	// is in `<name>-grant`, see GrantSecretSuffix). It cannot be changed after creation.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="secretName is immutable"
	// +required
	SecretName string `json:"secretName"`

	// secretTemplate holds labels and annotations stamped on the written Secret.
	// +optional
	SecretTemplate *SecretTemplate `json:"secretTemplate,omitempty"`

	// renewBefore makes the operator refresh this long before the access token expires (any positive
	// duration, for example "10m" or "5s"). Unset, it refreshes at about two thirds of the token's
	// lifetime, with jitter. When renewBefore is not shorter than the lifetime, two thirds apply.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="renewBefore must be a positive duration"
	// +optional
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`

	// refreshTokenKeepAlive makes the operator refresh at least this often even when the access token
	// would last longer, so the refresh token (dead after 14 days unused) never lapses. Default 168h.
	// +kubebuilder:default="168h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="refreshTokenKeepAlive must be a positive duration"
	// +optional
	RefreshTokenKeepAlive *metav1.Duration `json:"refreshTokenKeepAlive,omitempty"`
}

// CloudAuthorizationStatus is what the operator observed.
type CloudAuthorizationStatus struct {
	// observedGeneration is the metadata.generation the operator last acted on. Until it equals
	// metadata.generation the status describes an older spec (kstatus: InProgress). A new object's
	// status defaults to observedGeneration 0, so before the operator's first pass it reads as
	// InProgress too, not as a resource without status (which kstatus calls Current).
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: `Authorized` is True while the operator holds a usable refresh token; `Ready` is True
	// while the Secret holds an access token that has not expired.
	// `Stalled` (True, with Ready's reason, while only a person can fix it) and `Reconciling` (True while a
	// new generation is being acted on) follow the kstatus conventions Flux and Argo CD read.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// consentSecretName names the Secret (in this namespace, `<name>-consent`, data key
	// `authorization_url`) that holds the link a person opens to consent. Set only while consent is
	// needed. The link itself is never in status: only those who may read that Secret can consent.
	// +optional
	ConsentSecretName string `json:"consentSecretName,omitempty"`

	// consentExpiresAt is when the link in the consent Secret stops being accepted (it is then replaced).
	// +optional
	ConsentExpiresAt *metav1.Time `json:"consentExpiresAt,omitempty"`

	// consentStateHash is a one-way digest of the live consent's OAuth2 state: the operator finds the
	// CloudAuthorization of a callback by it. Neither the link nor the state can be derived from it.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	ConsentStateHash string `json:"consentStateHash,omitempty"`

	RefreshStatus `json:",inline"`
}

// CloudAuthorization obtains a person's consent for a Verizon Cloud app and keeps its OAuth2 tokens
// valid in a Secret.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 245",message="the name must be at most 245 characters: the operator writes the Secrets <name>-consent and <name>-grant"
// +kubebuilder:validation:XValidation:rule="!(self.spec.secretName in [self.metadata.name + '-consent', self.metadata.name + '-grant']) && !(self.spec.credentialsSecretRef.name in [self.metadata.name + '-consent', self.metadata.name + '-grant'])",message="secretName and credentialsSecretRef.name must not be <name>-consent or <name>-grant: the operator writes those"
// +kubebuilder:resource:shortName=cloudauth,categories=thingspace
// +kubebuilder:printcolumn:name="Authorized",type=string,JSONPath=`.status.conditions[?(@.type=="Authorized")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`,description="When the access token in the Secret expires (a future date prints as <invalid> in a date column)"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CloudAuthorization struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec CloudAuthorizationSpec `json:"spec"`
	// status is the observed state.
	// +optional
	// +kubebuilder:default={observedGeneration: 0}
	Status CloudAuthorizationStatus `json:"status,omitempty"`
}

// CloudAuthorizationList is a list of CloudAuthorization.
// +kubebuilder:object:root=true
type CloudAuthorizationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CloudAuthorization `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CloudAuthorization{}, &CloudAuthorizationList{})
}
