package gitops

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/test/harness"
)

// argoManager is the field manager Argo CD applies with (server-side apply).
const argoManager = "argocd-controller"

// The controller writes only status and its finalizers: each kind's sample, applied server-side as
// Argo CD does and brought to Ready by the operator, shows no difference in a server-side-apply dry
// run of the same manifest (what Argo CD's server-side diff computes), and the operator's field
// managers own nothing under spec and nothing in metadata but finalizers.
func TestServerSideApplyShowsNoDrift(t *testing.T) {
	e := newEnv(t, "ssa")
	e.secret(t, "fleet-app-credentials", map[string]string{v1alpha1.CredentialsKeyKey: appKey, v1alpha1.CredentialsKeySecret: appSecret})
	e.secret(t, "fleet-uws-credentials", map[string]string{v1alpha1.CredentialsKeyUsername: uwsUser, v1alpha1.CredentialsKeyPassword: uwsPassword})
	e.secret(t, "photos-app-credentials", map[string]string{v1alpha1.CredentialsKeyKey: appKey, v1alpha1.CredentialsKeySecret: appSecret})

	for _, s := range []struct {
		file string
		// point aims the sample at the simulator, as an overlay would.
		point func(u *unstructured.Unstructured)
	}{
		{"thingspace_v1alpha1_thingspaceapp.yaml", func(u *unstructured.Unstructured) { setSpec(t, u, e.simURL, "endpoint") }},
		{"thingspace_v1alpha1_m2msession.yaml", func(*unstructured.Unstructured) {}},
		{"thingspace_v1alpha1_cloudauthorization.yaml", func(u *unstructured.Unstructured) {
			setSpec(t, u, e.simURL+"/cloud/1", "endpoint")
			setSpec(t, u, e.callbackURL, "callbackURL")
		}},
	} {
		manifest := sample(t, s.file)
		manifest.SetNamespace(e.ns)
		s.point(manifest)
		kind, name := manifest.GetKind(), manifest.GetName()
		t.Run(kind, func(t *testing.T) {
			must(t, cp.Client.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(manifest.DeepCopy()),
				&client.ApplyOptions{FieldManager: argoManager, Force: ptr.To(true)}))
			if kind == kindCloud {
				e.consent(t, name)
			}
			_, live := e.waitStatus(t, kind, name, status.CurrentStatus)
			if conds := conditionsOf(live); len(conds) == 0 || !strings.Contains(strings.Join(conds, " "), "Ready=True") {
				t.Fatalf("not Ready: %v", conds)
			}
			if kind == kindSession && len(live.GetFinalizers()) == 0 {
				t.Fatal("no finalizer: the sample should exercise the operator's finalizer (logoutOnDelete defaults to true)")
			}

			dry := manifest.DeepCopy()
			must(t, cp.Client.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(dry),
				&client.ApplyOptions{FieldManager: argoManager, Force: ptr.To(true), DryRun: []string{metav1.DryRunAll}}))
			live = e.live(t, kind, name)
			if !reflect.DeepEqual(dry.Object["spec"], live.Object["spec"]) {
				t.Errorf("a dry-run apply of the sample changes the spec:\nlive %s\ndry  %s", js(live.Object["spec"]), js(dry.Object["spec"]))
			}
			if dry.GetGeneration() != live.GetGeneration() || dry.GetResourceVersion() != live.GetResourceVersion() {
				t.Errorf("a dry-run apply of the sample is not a no-op: generation %d→%d, resourceVersion %s→%s",
					live.GetGeneration(), dry.GetGeneration(), live.GetResourceVersion(), dry.GetResourceVersion())
			}
			for _, f := range []struct {
				what      string
				live, dry any
			}{{"labels", live.GetLabels(), dry.GetLabels()}, {"annotations", live.GetAnnotations(), dry.GetAnnotations()},
				{"finalizers", live.GetFinalizers(), dry.GetFinalizers()}, {"ownerReferences", live.GetOwnerReferences(), dry.GetOwnerReferences()}} {
				if !reflect.DeepEqual(f.live, f.dry) {
					t.Errorf("a dry-run apply changes %s: live %v, dry %v", f.what, f.live, f.dry)
				}
			}
			checkManagers(t, live)
		})
	}
}

// checkManagers fails when a field manager other than Argo CD's owns a spec field, or metadata other
// than finalizers.
func checkManagers(t *testing.T, live *unstructured.Unstructured) {
	t.Helper()
	others := 0
	for _, m := range live.GetManagedFields() {
		if m.Manager == argoManager && m.Operation == metav1.ManagedFieldsOperationApply {
			continue
		}
		others++
		var fields map[string]any
		must(t, json.Unmarshal(m.FieldsV1.GetRawBytes(), &fields))
		for top, sub := range fields {
			switch {
			case top == "f:status" && m.Subresource == "status":
			case top == "f:metadata":
				for k := range sub.(map[string]any) {
					if k != "f:finalizers" {
						t.Errorf("manager %q (%s) owns metadata field %s", m.Manager, m.Operation, k)
					}
				}
			default:
				t.Errorf("manager %q (%s, subresource %q) owns %s", m.Manager, m.Operation, m.Subresource, top)
			}
		}
	}
	if others == 0 {
		t.Error("no field manager but Argo CD's: the operator's status writes should show")
	}
}

// sample reads config/samples/file into an unstructured object.
func sample(t *testing.T, file string) *unstructured.Unstructured {
	t.Helper()
	root, err := harness.RepoRoot()
	must(t, err)
	b, err := os.ReadFile(filepath.Join(root, "config", "samples", file))
	must(t, err)
	u := &unstructured.Unstructured{}
	must(t, yaml.Unmarshal(b, &u.Object))
	return u
}

func setSpec(t *testing.T, u *unstructured.Unstructured, value string, field string) {
	t.Helper()
	must(t, unstructured.SetNestedField(u.Object, value, "spec", field))
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
