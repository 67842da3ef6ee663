package cli

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// KubeFlags are kubectl's connection flags the plugin honours.
type KubeFlags struct {
	// Kubeconfig is --kubeconfig; empty: $KUBECONFIG (a list), else ~/.kube/config.
	Kubeconfig string
	// Context is --context; empty: the current context.
	Context string
	// Namespace is -n/--namespace; empty: the context's namespace, else "default".
	Namespace string
}

// Connect loads the kubeconfig the way kubectl does and returns a client for the operator's kinds and
// Secrets (only `consent` reads one: the consent link's) and the namespace to act in.
func Connect(kf KubeFlags) (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kf.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: kf.Context}
	overrides.Context.Namespace = kf.Namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.UserAgent = "kubectl-thingspace"
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("connect to %s: %w", cfg.Host, err)
	}
	return c, ns, nil
}
