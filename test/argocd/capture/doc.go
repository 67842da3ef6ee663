// Package capture drives the real controllers (in-process, on envtest's kube-apiserver and etcd) against
// the in-process ThingSpace and Verizon Cloud simulator into the states Argo CD users see, and runs the
// health.lua scripts on the objects the controllers wrote. It also keeps the committed
// resource_customizations/.../testdata/captured-*.yaml honest: each must still have the conditions the
// controllers now write for its scenario. `make argocd-capture` rewrites those files and their
// health_test.yaml cases from a fresh run.
package capture
