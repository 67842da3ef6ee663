// Package chart tests the Helm chart in charts/thingspace-operator, all in `make test`:
//
//   - the chart's copies of the generated CRDs and RBAC rules (files/, written by `make manifests`) are
//     byte for byte config/'s, and the objects the chart renders from them carry the same rules and
//     schemas, so Helm and kustomize install the same operator;
//   - `helm lint` (also --strict) passes, and values.schema.json rejects unknown keys and bad types;
//   - `helm template` with the default values and a matrix of non-default ones renders what each value
//     promises, and every rendered object is accepted by a real kube-apiserver (envtest's, from
//     KUBEBUILDER_ASSETS) in a server-side dry-run with strict field validation;
//   - the manager Deployment carries the flags, GOMEMLIMIT, security contexts, probes and resources of
//     config/manager;
//   - the uninstall drain hook (drainOnUninstall) is a pre-delete Pod running `/manager drain` for the
//     rendered Deployment, with least-privilege RBAC created before it, the manager's image, security
//     contexts and scheduling, labels no manager selector matches, and passes restricted Pod Security;
//     `make undeploy` drains the Deployment config/default builds before deleting the rest.
//
// helm comes from $HELM (`make test` passes bin/helm-<version>), else <repo>/bin/helm. A missing helm
// fails the tests when HELM is set or in CI (CI set); only a bare `go test` elsewhere skips them.
package chart
