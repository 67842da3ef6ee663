package harness

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// ErrTimeout is wrapped by WaitFor when the condition did not hold in time.
var ErrTimeout = errors.New("timed out")

// WaitFor calls cond every interval until it returns true (nil), returns an error (that error), timeout
// passes or ctx ends (an error wrapping ErrTimeout or ctx's error). cond runs once straight away.
func WaitFor(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w after %v", ErrTimeout, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(interval, time.Until(deadline))):
		}
	}
}

// CreateCredentials creates the Secret ns/name with data keys key and secret, as a ThingSpaceApp's
// credentialsSecretRef expects.
func CreateCredentials(ctx context.Context, c client.Client, ns, name, key, secret string) error {
	return c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string][]byte{v1alpha1.CredentialsKeyKey: []byte(key), v1alpha1.CredentialsKeySecret: []byte(secret)},
	})
}

// NewApp returns a ThingSpaceApp (not yet created) reading credentials from credsName and writing its
// token to secretName.
func NewApp(ns, name, endpoint, credsName, secretName string) *v1alpha1.ThingSpaceApp {
	return &v1alpha1.ThingSpaceApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ThingSpaceAppSpec{
			Endpoint:             endpoint,
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: credsName},
			SecretName:           secretName,
		},
	}
}

// ReadToken reads the token and its expiry from the Secret a ThingSpaceApp writes. It fails when the
// Secret is missing, has no token, or expires_at is not RFC 3339.
func ReadToken(ctx context.Context, c client.Client, ns, secretName string) (token string, expiresAt time.Time, err error) {
	s := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: secretName}, s); err != nil {
		return "", time.Time{}, err
	}
	token = string(s.Data[v1alpha1.SecretKeyAccessToken])
	if token == "" {
		return "", time.Time{}, fmt.Errorf("secret %s/%s has no %s", ns, secretName, v1alpha1.SecretKeyAccessToken)
	}
	expiresAt, err = time.Parse(time.RFC3339, string(s.Data[v1alpha1.SecretKeyExpiresAt]))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("secret %s/%s: %s: %w", ns, secretName, v1alpha1.SecretKeyExpiresAt, err)
	}
	return token, expiresAt, nil
}

// Ready reports whether app's Ready condition is True, and its reason ("" when there is no condition).
func Ready(app *v1alpha1.ThingSpaceApp) (bool, string) {
	c := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil {
		return false, ""
	}
	return c.Status == metav1.ConditionTrue, c.Reason
}

// MetricValue finds the sample of the metric name whose labels include all of labels in a Prometheus
// text exposition, and returns its value.
func MetricValue(exposition, name string, labels map[string]string) (float64, bool) {
	for line := range strings.SplitSeq(exposition, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		got := map[string]string{}
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			got = parseLabels(rest[1:end])
			rest = rest[end+1:]
		}
		match := true
		for k, v := range labels {
			if got[k] != v {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		return v, true
	}
	return 0, false
}

// parseLabels reads `a="x",b="y"` (with Prometheus escapes in values).
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return out
		}
		key := strings.TrimSpace(s[:eq])
		s = s[eq+2:]
		var val strings.Builder
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
				continue
			}
			val.WriteByte(s[i])
		}
		out[key] = val.String()
		if i >= len(s) {
			return out
		}
		s = strings.TrimLeft(s[i+1:], ", ")
	}
	return out
}
