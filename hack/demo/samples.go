package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/hack/internal/cloud"
)

// targets are what the samples are pointed at.
type targets struct {
	endpoint    string        // the simulator's URL
	keepAlive   time.Duration // the M2MSessions' keepAlive.interval
	callbackURL string        // the manager's OAuth2 callback
}

// applied names the objects applySamples created, by kind.
type applied struct{ apps, sessions, clouds []string }

// applySamples creates the objects of the manifests listed by dir's kustomization.yaml (else every
// *.yaml in dir) in namespace ns: Secrets a ThingSpaceApp reads its credentials from get the
// simulator's demo app, ThingSpaceApps get the simulator as their endpoint, Secrets an M2MSession
// reads its credentials from get the simulator's demo UWS user, M2MSessions get keepAlive.interval,
// Secrets a CloudAuthorization reads its credentials from get the simulator's demo Cloud app, and
// CloudAuthorizations get the simulator's Cloud API and the manager's callback URL.
func applySamples(ctx context.Context, c client.Client, root, dir, ns string, t targets) (got applied, err error) {
	files, err := sampleFiles(dir)
	if err != nil {
		return got, err
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		read, err := readManifests(f)
		if err != nil {
			return got, err
		}
		objs = append(objs, read...)
	}

	credentials := map[string]bool{}      // the apps'
	uwsCredentials := map[string]bool{}   // the sessions'
	cloudCredentials := map[string]bool{} // the CloudAuthorizations'
	for _, u := range objs {
		var (
			creds   map[string]bool
			set     map[string]any // spec fields to set, by dotted path
			created *[]string
		)
		switch u.GroupVersionKind().GroupKind() {
		case v1alpha1.GroupVersion.WithKind("ThingSpaceApp").GroupKind():
			creds, created, set = credentials, &got.apps, map[string]any{"endpoint": t.endpoint}
		case v1alpha1.GroupVersion.WithKind("M2MSession").GroupKind():
			creds, created, set = uwsCredentials, &got.sessions, map[string]any{"keepAlive.interval": t.keepAlive.String()}
		case v1alpha1.GroupVersion.WithKind("CloudAuthorization").GroupKind():
			creds, created, set = cloudCredentials, &got.clouds, map[string]any{"endpoint": cloud.Endpoint(t.endpoint), "callbackURL": t.callbackURL}
		default:
			continue
		}
		name, _, _ := unstructured.NestedString(u.Object, "spec", "credentialsSecretRef", "name")
		creds[name] = true
		for path, v := range set {
			if err := unstructured.SetNestedField(u.Object, v, append([]string{"spec"}, strings.Split(path, ".")...)...); err != nil {
				return got, err
			}
		}
		*created = append(*created, u.GetName())
	}
	for _, u := range objs {
		if u.GetKind() != "Secret" || u.GetAPIVersion() != "v1" {
			continue
		}
		var data map[string]string
		switch {
		case credentials[u.GetName()]:
			data = map[string]string{v1alpha1.CredentialsKeyKey: demoKey, v1alpha1.CredentialsKeySecret: demoSecret}
		case uwsCredentials[u.GetName()]:
			data = map[string]string{v1alpha1.CredentialsKeyUsername: demoUWSUser, v1alpha1.CredentialsKeyPassword: demoUWSPassword}
		case cloudCredentials[u.GetName()]:
			data = map[string]string{v1alpha1.CredentialsKeyKey: demoCloudKey, v1alpha1.CredentialsKeySecret: demoCloudSecret}
		default:
			continue
		}
		delete(u.Object, "data")
		if err := unstructured.SetNestedStringMap(u.Object, data, "stringData"); err != nil {
			return got, err
		}
	}
	// Secrets first, so that no ThingSpaceApp is reconciled before its credentials exist.
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return boolRank(a.GetKind() != "Secret") - boolRank(b.GetKind() != "Secret")
	})

	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return got, err
	}
	say("Applying the samples from %s to namespace %s:", rel(root, dir), ns)
	for _, u := range objs {
		u.SetNamespace(ns)
		if err := createOrReplace(ctx, c, u); err != nil {
			return got, fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		switch {
		case credentials[u.GetName()] && u.GetKind() == "Secret":
			step("Secret %s/%s created: the app's credentials (key=%s, secret hidden)", ns, u.GetName(), demoKey)
		case uwsCredentials[u.GetName()] && u.GetKind() == "Secret":
			step("Secret %s/%s created: the UWS credentials (username=%s, password hidden)", ns, u.GetName(), demoUWSUser)
		case cloudCredentials[u.GetName()] && u.GetKind() == "Secret":
			step("Secret %s/%s created: the Verizon Cloud app's credentials (key=%s, secret hidden)", ns, u.GetName(), demoCloudKey)
		case u.GetKind() == "ThingSpaceApp":
			secretName, _, _ := unstructured.NestedString(u.Object, "spec", "secretName")
			step("ThingSpaceApp %s/%s created: endpoint %s, token to Secret %s", ns, u.GetName(), t.endpoint, secretName)
		case u.GetKind() == "M2MSession":
			secretName, _, _ := unstructured.NestedString(u.Object, "spec", "secretName")
			app, _, _ := unstructured.NestedString(u.Object, "spec", "appRef", "name")
			account, _, _ := unstructured.NestedString(u.Object, "spec", "keepAlive", "accountName")
			step("M2MSession %s/%s created: session of ThingSpaceApp %s to Secret %s, kept alive every %s by reading account %s (the sample says 10m)",
				ns, u.GetName(), app, secretName, t.keepAlive, account)
		case u.GetKind() == "CloudAuthorization":
			secretName, _, _ := unstructured.NestedString(u.Object, "spec", "secretName")
			step("CloudAuthorization %s/%s created: endpoint %s, callbackURL %s (the sample's is example.com's), tokens to Secret %s",
				ns, u.GetName(), cloud.Endpoint(t.endpoint), t.callbackURL, secretName)
		default:
			step("%s %s/%s created", u.GetKind(), ns, u.GetName())
		}
	}
	return got, nil
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sampleFiles(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err == nil {
		var k struct {
			Resources []string `json:"resources"`
		}
		if err := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(b)), 4096).Decode(&k); err != nil {
			return nil, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
		}
		out := make([]string, 0, len(k.Resources))
		for _, r := range k.Resources {
			out = append(out, filepath.Join(dir, r))
		}
		return out, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return filepath.Glob(filepath.Join(dir, "*.yaml"))
}

// readManifests decodes every YAML document in path.
func readManifests(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(m) == 0 {
			continue // an empty document
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

func createOrReplace(ctx context.Context, c client.Client, u *unstructured.Unstructured) error {
	err := c.Create(ctx, u.DeepCopy())
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur := &unstructured.Unstructured{}
	cur.SetGroupVersionKind(u.GroupVersionKind())
	if err := c.Get(ctx, client.ObjectKeyFromObject(u), cur); err != nil {
		return err
	}
	upd := u.DeepCopy()
	upd.SetResourceVersion(cur.GetResourceVersion())
	return c.Update(ctx, upd)
}
