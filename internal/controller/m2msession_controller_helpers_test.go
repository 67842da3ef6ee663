package controller

import (
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

const resetRoute = "PUT /api/m2m/v1/session/password/actions/reset"

func (f *fixture) getSession(name string) *v1alpha1.M2MSession {
	f.t.Helper()
	s := &v1alpha1.M2MSession{}
	must(f.t, k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: name}, s))
	return s
}

func (f *fixture) setUWSPassword(name, password string) {
	f.t.Helper()
	sec := &corev1.Secret{}
	must(f.t, k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: name}, sec))
	sec.Data[v1alpha1.CredentialsKeyPassword] = []byte(password)
	must(f.t, k8s.Update(ctx, sec))
}

// poke changes an annotation of the session that means nothing to the operator: one more reconcile.
func (f *fixture) poke(name, value string) {
	f.t.Helper()
	s := f.getSession(name)
	patch := client.MergeFrom(s.DeepCopy())
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations["test.example/poke"] = value
	must(f.t, k8s.Patch(ctx, s, patch))
}
