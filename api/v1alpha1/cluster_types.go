package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AllowedNamespaces says which namespaces may consume a cluster-scoped credential. A namespace is allowed
// when it is named in names or matched by selector. Unset, or both fields empty, allows no namespace;
// allowing every namespace must be written explicitly, as `selector: {}`.
type AllowedNamespaces struct {
	// names lists namespaces allowed by name.
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +listType=set
	// +optional
	Names []string `json:"names,omitempty"`

	// selector allows the namespaces whose labels it matches. The empty selector ({}) matches every
	// namespace.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// ClusterObjectReference names a cluster-scoped object of a known kind.
type ClusterObjectReference struct {
	// name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// ClusterThingSpaceAppSpec is a ThingSpaceAppSpec owned by the platform team: its credentials Secret and
// its own Secret live in the manager's --cluster-resource-namespace, and namespaces it allows consume its
// token through ThingSpaceApp.spec.clusterAppRef.
// +kubebuilder:validation:XValidation:rule="has(self.credentialsSecretRef)",message="a ClusterThingSpaceApp needs credentialsSecretRef"
// +kubebuilder:validation:XValidation:rule="!has(self.clusterAppRef)",message="a ClusterThingSpaceApp cannot consume another one: clusterAppRef is for ThingSpaceApps"
type ClusterThingSpaceAppSpec struct {
	ThingSpaceAppSpec `json:",inline"`

	// allowedNamespaces says which namespaces may consume this app's token. Unset allows none.
	// +optional
	AllowedNamespaces *AllowedNamespaces `json:"allowedNamespaces,omitempty"`
}

// ConsumerStatus counts the namespaced objects a cluster-scoped credential serves.
type ConsumerStatus struct {
	// consumers is how many namespaced objects reference this one from allowed namespaces.
	// +optional
	Consumers int32 `json:"consumers"`

	// refusedConsumers is how many reference it from namespaces it does not allow.
	// +optional
	RefusedConsumers int32 `json:"refusedConsumers,omitempty"`
}

// ClusterThingSpaceAppStatus is what the operator observed.
type ClusterThingSpaceAppStatus struct {
	ThingSpaceAppStatus `json:",inline"`
	ConsumerStatus      `json:",inline"`
}

// ClusterThingSpaceApp keeps one ThingSpace OAuth2 app token valid for the whole cluster: the namespaces
// it allows consume the token through their own ThingSpaceApps (spec.clusterAppRef), at no extra upstream
// call.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ctsapp,categories=thingspace
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.spec.secretName`
// +kubebuilder:printcolumn:name="Consumers",type=integer,JSONPath=`.status.consumers`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`,description="When the token in the Secret expires (a future date prints as <invalid> in a date column)"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterThingSpaceApp struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec ClusterThingSpaceAppSpec `json:"spec"`
	// status is the observed state.
	// +optional
	// +kubebuilder:default={observedGeneration: 0}
	Status ClusterThingSpaceAppStatus `json:"status,omitempty"`
}

// ClusterThingSpaceAppList is a list of ClusterThingSpaceApp.
// +kubebuilder:object:root=true
type ClusterThingSpaceAppList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterThingSpaceApp `json:"items"`
}

// ClusterM2MSessionSpec is an M2MSessionSpec owned by the platform team: appRef names a
// ClusterThingSpaceApp, its credentials Secret and its own Secret live in the manager's
// --cluster-resource-namespace, and namespaces it allows consume its session through
// M2MSession.spec.clusterSessionRef.
// +kubebuilder:validation:XValidation:rule="has(self.credentialsSecretRef) && has(self.appRef)",message="a ClusterM2MSession needs appRef (a ClusterThingSpaceApp) and credentialsSecretRef"
// +kubebuilder:validation:XValidation:rule="!has(self.clusterSessionRef)",message="a ClusterM2MSession cannot consume another one: clusterSessionRef is for M2MSessions"
type ClusterM2MSessionSpec struct {
	M2MSessionSpec `json:",inline"`

	// allowedNamespaces says which namespaces may consume this session. Unset allows none.
	// +optional
	AllowedNamespaces *AllowedNamespaces `json:"allowedNamespaces,omitempty"`
}

// ClusterM2MSessionStatus is what the operator observed.
type ClusterM2MSessionStatus struct {
	M2MSessionStatus `json:",inline"`
	ConsumerStatus   `json:",inline"`
}

// ClusterM2MSession keeps one UWS session alive for the whole cluster (a company has one set of machine
// credentials): the namespaces it allows consume it through their own M2MSessions
// (spec.clusterSessionRef), with no login of their own.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cm2m,categories=thingspace
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.spec.secretName`
// +kubebuilder:printcolumn:name="Consumers",type=integer,JSONPath=`.status.consumers`
// +kubebuilder:printcolumn:name="Last Login",type=date,JSONPath=`.status.lastLoginTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterM2MSession struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec ClusterM2MSessionSpec `json:"spec"`
	// status is the observed state.
	// +optional
	// +kubebuilder:default={observedGeneration: 0}
	Status ClusterM2MSessionStatus `json:"status,omitempty"`
}

// ClusterM2MSessionList is a list of ClusterM2MSession.
// +kubebuilder:object:root=true
type ClusterM2MSessionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterM2MSession `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ClusterThingSpaceApp{}, &ClusterThingSpaceAppList{},
		&ClusterM2MSession{}, &ClusterM2MSessionList{})
}
