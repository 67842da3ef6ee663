package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credops/thingspace-operator/api/v1alpha1"
	"github.com/credops/thingspace-operator/internal/simulator"
)

// Connectivity Management (M2M / UWS) routes as the simulator counts them in its stats.
const (
	RouteM2MLogin   = "POST /api/m2m/v1/session/login"
	RouteM2MLogout  = "POST /api/m2m/v1/session/logout"
	RouteM2MReset   = "PUT /api/m2m/v1/session/password/actions/reset"
	RouteM2MAccount = "GET /api/m2m/v1/accounts/{accountName}"
)

// M2MTokenHeader carries the session token on every M2M call after login.
const M2MTokenHeader = simulator.M2MTokenHeader

// M2MUserInfo is the simulator's view of a UWS user, password included.
type M2MUserInfo = simulator.M2MUserInfo

// SetM2MUser creates a UWS user on the simulator or sets its password (lock state, failures and live
// sessions stay as they are).
func (s *Sim) SetM2MUser(name, password string) error {
	return s.admin(http.MethodPut, "/admin/m2m/users/"+url.PathEscape(name), map[string]string{"password": password}, http.StatusNoContent, nil)
}

// M2MUser returns the simulator's state of a UWS user: locked, consecutive failures, successful
// logins, its current password and its live sessions.
func (s *Sim) M2MUser(name string) (M2MUserInfo, error) {
	var info M2MUserInfo
	err := s.admin(http.MethodGet, "/admin/m2m/users/"+url.PathEscape(name), nil, http.StatusOK, &info)
	return info, err
}

// UnlockM2MUser unlocks a UWS user and clears its failure count, as Verizon support would.
func (s *Sim) UnlockM2MUser(name string) error {
	return s.admin(http.MethodPost, "/admin/m2m/users/"+url.PathEscape(name)+"/unlock", nil, http.StatusNoContent, nil)
}

// ExpireM2MSessions ends every live session as if it had idled out and returns how many there were.
func (s *Sim) ExpireM2MSessions() (int, error) {
	var out struct {
		Expired int `json:"expired"`
	}
	err := s.admin(http.MethodPost, "/admin/m2m/sessions/expire", nil, http.StatusOK, &out)
	return out.Expired, err
}

// ActiveM2MSessions returns how many M2M sessions are live on the simulator.
func (s *Sim) ActiveM2MSessions() (int, error) {
	var out struct {
		Active int `json:"active"`
	}
	err := s.admin(http.MethodGet, "/admin/m2m/sessions", nil, http.StatusOK, &out)
	return out.Active, err
}

// M2MError is a refused M2M call: the HTTP status and the errorCode (or the gateway fault code). It
// never holds a credential.
type M2MError struct {
	Status int
	Code   string
}

func (e *M2MError) Error() string { return fmt.Sprintf("status %d, code %q", e.Status, e.Code) }

// M2MLogin logs in as a client would, with bearer (a live ThingSpace access token), and returns the
// session token. The request is counted in Stats; a refused login counts towards the user's lockout.
func (s *Sim) M2MLogin(ctx context.Context, bearer, username, password string) (string, error) {
	var out struct {
		SessionToken string `json:"sessionToken"`
	}
	body := map[string]string{"username": username, "password": password}
	if err := s.m2m(ctx, http.MethodPost, "/api/m2m/v1/session/login", bearer, "", body, &out); err != nil {
		return "", err
	}
	return out.SessionToken, nil
}

// M2MAccount reads an account with a session, as a client would: it tells whether the simulator accepts
// the session (and, like any successful use, keeps it alive). The request is counted in Stats.
func (s *Sim) M2MAccount(ctx context.Context, bearer, session, account string) error {
	return s.m2m(ctx, http.MethodGet, "/api/m2m/v1/accounts/"+url.PathEscape(account), bearer, session, nil, nil)
}

// M2MLogout ends a session as a client would. The request is counted in Stats.
func (s *Sim) M2MLogout(ctx context.Context, bearer, session string) error {
	return s.m2m(ctx, http.MethodPost, "/api/m2m/v1/session/logout", bearer, session, nil, nil)
}

func (s *Sim) m2m(ctx context.Context, method, path, bearer, session string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	if session != "" {
		req.Header.Set(M2MTokenHeader, session)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		// The URL holds no credential; the error names the path only.
		return fmt.Errorf("%s %s: request failed", method, path)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			ErrorCode string `json:"errorCode"`
			Fault     struct {
				Code string `json:"code"`
			} `json:"fault"`
		}
		_ = json.Unmarshal(b, &e)
		code := e.ErrorCode
		if code == "" {
			code = e.Fault.Code
		}
		return fmt.Errorf("%s %s: %w", method, path, &M2MError{Status: resp.StatusCode, Code: code})
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: undecodable response", method, path)
		}
	}
	return nil
}

// CreateUWSCredentials creates the Secret ns/name with data keys username and password, as an
// M2MSession's credentialsSecretRef expects.
func CreateUWSCredentials(ctx context.Context, c client.Client, ns, name, username, password string) error {
	return c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string][]byte{v1alpha1.CredentialsKeyUsername: []byte(username), v1alpha1.CredentialsKeyPassword: []byte(password)},
	})
}

// NewM2MSession returns an M2MSession (not yet created) using the ThingSpaceApp appName, reading UWS
// credentials from credsName and writing its session to secretName, kept alive every interval with a
// read of account (a re-login every interval when account is empty). A zero interval leaves the
// API server's default (10m).
func NewM2MSession(ns, name, appName, credsName, secretName string, interval time.Duration, account string) *v1alpha1.M2MSession {
	s := &v1alpha1.M2MSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.M2MSessionSpec{
			AppRef:               &v1alpha1.LocalObjectReference{Name: appName},
			CredentialsSecretRef: &v1alpha1.LocalSecretReference{Name: credsName},
			SecretName:           secretName,
			KeepAlive:            v1alpha1.KeepAliveSpec{AccountName: account},
		},
	}
	if interval > 0 {
		s.Spec.KeepAlive.Interval = &metav1.Duration{Duration: interval}
	}
	return s
}

// SessionSecret is what an M2MSession's Secret holds.
type SessionSecret struct {
	SessionToken string
	// AccessToken is the ThingSpaceApp's token, as the Secret carries it.
	AccessToken          string
	AccessTokenExpiresAt time.Time
	ResourceVersion      string
}

// ReadSession reads the Secret an M2MSession writes. It fails when the Secret is missing, lacks the
// session or the access token, or access_token_expires_at is not RFC 3339.
func ReadSession(ctx context.Context, c client.Client, ns, secretName string) (SessionSecret, error) {
	s := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: secretName}, s); err != nil {
		return SessionSecret{}, err
	}
	out := SessionSecret{
		SessionToken:    string(s.Data[v1alpha1.SecretKeySessionToken]),
		AccessToken:     string(s.Data[v1alpha1.SecretKeyAccessToken]),
		ResourceVersion: s.ResourceVersion,
	}
	if out.SessionToken == "" || out.AccessToken == "" {
		return SessionSecret{}, fmt.Errorf("secret %s/%s lacks %s or %s", ns, secretName, v1alpha1.SecretKeySessionToken, v1alpha1.SecretKeyAccessToken)
	}
	var err error
	if out.AccessTokenExpiresAt, err = time.Parse(time.RFC3339, string(s.Data[v1alpha1.SecretKeyAccessTokenExpiresAt])); err != nil {
		return SessionSecret{}, fmt.Errorf("secret %s/%s: %s: %w", ns, secretName, v1alpha1.SecretKeyAccessTokenExpiresAt, err)
	}
	return out, nil
}

// SessionReady reports whether an M2MSession's Ready condition is True, and its reason ("" when there
// is no condition).
func SessionReady(s *v1alpha1.M2MSession) (bool, string) {
	c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil {
		return false, ""
	}
	return c.Status == metav1.ConditionTrue, c.Reason
}

// AddUWSCredentials records a UWS password, and its JSON-escaped form when that differs (a password
// quoted in a JSON log line).
func (s *Sensitive) AddUWSCredentials(username, password string) {
	s.Add("the UWS password of "+username, password)
	if b, err := json.Marshal(password); err == nil {
		if q := string(b[1 : len(b)-1]); q != password {
			s.Add("the UWS password of "+username+" (JSON-escaped)", q)
		}
	}
}
