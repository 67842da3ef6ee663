package controller

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/credops/thingspace-operator/api/v1alpha1"
)

// The leak check runs after all the suite's tests (from TestMain), whichever ran and in whatever order
// (-run, -shuffle): every secret that crossed the wire between the operator and a test's simulator —
// app secrets, access and refresh tokens, authorization codes, UWS passwords old and new, session
// tokens — must appear in no log line, event, condition or status of the suite.

// wire collects the secrets seen on the simulators' wire.
var wire = struct {
	mu  sync.Mutex
	set map[string]bool
}{set: map[string]bool{}}

func noteSecret(v string) {
	// Short values (a "Bearer", an empty field) would match innocent text and prove nothing.
	if len(v) < 8 {
		return
	}
	wire.mu.Lock()
	defer wire.mu.Unlock()
	wire.set[v] = true
}

// secretFields are the JSON members and form fields that carry secrets in either direction.
var secretFields = []string{"access_token", "refresh_token", "code", "client_secret", "sessionToken",
	"password", "oldPassword", "newPassword", "token"}

// recordWire wraps a simulator so that every secret in its requests and answers is noted.
func recordWire(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		noteBody(body)
		for _, h := range []string{"Authorization", "VZ-M2M-Token"} {
			noteHeader(r.Header.Get(h))
		}
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		noteBody(rec.body.Bytes())
		if loc, err := url.Parse(rec.Header().Get("Location")); err == nil {
			noteSecret(loc.Query().Get("code"))
		}
	})
}

func noteHeader(v string) {
	scheme, cred, ok := strings.Cut(v, " ")
	if !ok {
		noteSecret(v)
		return
	}
	noteSecret(cred)
	if strings.EqualFold(scheme, "Basic") {
		if raw, err := base64.StdEncoding.DecodeString(cred); err == nil {
			if _, secret, ok := strings.Cut(string(raw), ":"); ok {
				noteSecret(secret)
			}
		}
	}
}

func noteBody(b []byte) {
	var obj map[string]any
	if json.Unmarshal(b, &obj) == nil {
		for _, k := range secretFields {
			if s, ok := obj[k].(string); ok {
				noteSecret(s)
			}
		}
		return
	}
	if form, err := url.ParseQuery(string(b)); err == nil {
		for _, k := range secretFields {
			noteSecret(form.Get(k))
		}
	}
}

type recorder struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.body.Write(p)
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// leakCheck looks for every noted secret in the suite's logs, events and statuses.
func leakCheck(ctx context.Context) error {
	var haystack strings.Builder
	haystack.WriteString(logs.String())
	evs := &corev1.EventList{}
	if err := k8s.List(ctx, evs); err != nil {
		return err
	}
	for _, e := range evs.Items {
		fmt.Fprintf(&haystack, "%s %s\n", e.Reason, e.Message)
	}
	if err := appendStatuses(ctx, &haystack); err != nil {
		return err
	}
	all := haystack.String()
	wire.mu.Lock()
	defer wire.mu.Unlock()
	cloudSecrets.mu.Lock()
	for _, v := range cloudSecrets.values {
		wire.set[v] = true
	}
	cloudSecrets.mu.Unlock()
	var found []string
	for v := range wire.set {
		if strings.Contains(all, v) {
			found = append(found, v[:min(len(v), 6)]+"…")
		}
	}
	// Header renderings, never the word: CloudAuthorization is a kind name.
	for _, v := range []string{"Basic ", "Authorization:", `"Authorization"`, "VZ-M2M-Token:"} {
		if strings.Contains(all, v) {
			found = append(found, v)
		}
	}
	if len(found) > 0 {
		sort.Strings(found)
		return fmt.Errorf("%d secret(s) found in logs, events or status: %s", len(found), strings.Join(found, ", "))
	}
	fmt.Printf("leak check: %d secrets seen on the wire, none in %d bytes of logs, events and status\n", len(wire.set), len(all))
	return nil
}

// appendStatuses writes every custom resource's status, as JSON, into w.
func appendStatuses(ctx context.Context, w io.Writer) error {
	apps, sessions, clouds := &v1alpha1.ThingSpaceAppList{}, &v1alpha1.M2MSessionList{}, &v1alpha1.CloudAuthorizationList{}
	var statuses []any
	if err := k8s.List(ctx, apps); err != nil {
		return err
	}
	for _, a := range apps.Items {
		statuses = append(statuses, a.Status)
	}
	if err := k8s.List(ctx, sessions); err != nil {
		return err
	}
	for _, s := range sessions.Items {
		statuses = append(statuses, s.Status)
	}
	if err := k8s.List(ctx, clouds); err != nil {
		return err
	}
	for _, c := range clouds.Items {
		statuses = append(statuses, c.Status)
	}
	clusterSessions := &v1alpha1.ClusterM2MSessionList{}
	if err := k8s.List(ctx, clusterSessions); err != nil {
		return err
	}
	for _, c := range clusterSessions.Items {
		statuses = append(statuses, c.Status)
	}
	clusterApps := &v1alpha1.ClusterThingSpaceAppList{}
	if err := k8s.List(ctx, clusterApps); err != nil {
		return err
	}
	for _, c := range clusterApps.Items {
		statuses = append(statuses, c.Status)
	}
	for _, s := range statuses {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		_, _ = w.Write(append(b, '\n'))
	}
	return nil
}
