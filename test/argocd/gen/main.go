// Command gen writes config/argocd/argocd-cm-patch.yaml from the health.lua scripts (make argocd-cm);
// run it from the repository root.
package main

import (
	"fmt"
	"os"

	"github.com/credops/thingspace-operator/test/argocd"
)

func main() {
	out, err := argocd.RenderConfigMap(".")
	if err == nil {
		err = os.WriteFile(argocd.ConfigMapPath, out, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
