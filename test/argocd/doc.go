// Package argocd runs the operator's Argo CD health checks (resource_customizations/<group>/<Kind>/
// health.lua) the way Argo CD does: in gopher-lua, with the libraries Argo CD opens and the object
// converted from JSON to Lua tables as Argo CD converts it. The tests run every case of each kind's
// health_test.yaml (Argo CD's upstream layout), check that the testdata and the scripts only use
// condition types and reasons the API defines, and that config/argocd/argocd-cm-patch.yaml carries the
// scripts unchanged (`make argocd-cm` regenerates it). Package capture (test/argocd/capture) drives the
// real controllers into the captured-*.yaml states and checks those files against them.
package argocd
