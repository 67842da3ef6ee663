// Package v1alpha1 holds the thingspace.credops.io/v1alpha1 API: the custom resources through which
// users ask the operator to keep Verizon ThingSpace credentials valid in Kubernetes Secrets.
//
// +kubebuilder:object:generate=true
// +groupName=thingspace.credops.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "thingspace.credops.io", Version: "v1alpha1"}

	// SchemeBuilder adds the types of this group-version to a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
