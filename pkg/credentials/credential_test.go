package credentials

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t1 := time.Date(2026, 12, 1, 19, 0, 0, 123e6, time.UTC)
	t2 := t1.Add(-10 * time.Minute)
	ts := func(t time.Time) []byte { return []byte(t.Format("2006-01-02T15:04:05.000Z07:00")) }
	cases := []struct {
		name    string
		data    map[string][]byte
		want    Credential
		wantErr string // a key the error must name
	}{
		{"ThingSpaceApp", map[string][]byte{"access_token": []byte("xyzzy"), "token_type": []byte("Bearer"), "expires_at": ts(t1)},
			Credential{AccessToken: "xyzzy", TokenType: "Bearer", ExpiresAt: t1}, ""},
		{"CloudAuthorization with other keys ignored", map[string][]byte{"access_token": []byte("xyzzy"), "token_type": []byte("bearer"), "expires_at": ts(t1), "refresh_token": []byte("r")},
			Credential{AccessToken: "xyzzy", TokenType: "bearer", ExpiresAt: t1}, ""},
		{"no token_type means Bearer", map[string][]byte{"access_token": []byte("xyzzy"), "expires_at": ts(t1)},
			Credential{AccessToken: "xyzzy", TokenType: "Bearer", ExpiresAt: t1}, ""},
		{"whitespace a hand-written Secret adds", map[string][]byte{"access_token": []byte("xyzzy\n"), "expires_at": []byte(" 2026-12-01T19:00:00.123Z\n")},
			Credential{AccessToken: "xyzzy", TokenType: "Bearer", ExpiresAt: t1}, ""},
		{"RFC 3339 without fraction", map[string][]byte{"access_token": []byte("xyzzy"), "expires_at": []byte("2026-12-01T19:00:00Z")},
			Credential{AccessToken: "xyzzy", TokenType: "Bearer", ExpiresAt: t1.Truncate(time.Second)}, ""},
		{"M2MSession", map[string][]byte{"access_token": []byte("xyzzy"), "session_token": []byte("sess"), "access_token_expires_at": ts(t1)},
			Credential{AccessToken: "xyzzy", TokenType: "Bearer", SessionToken: "sess", ExpiresAt: t1}, ""},
		{"M2MSession: the earliest expiry wins", map[string][]byte{"access_token": []byte("xyzzy"), "session_token": []byte("sess"), "access_token_expires_at": ts(t1), "expires_at": ts(t2)},
			Credential{AccessToken: "xyzzy", TokenType: "Bearer", SessionToken: "sess", ExpiresAt: t2}, ""},
		{"M2MSession: expires_at alone is not its Bearer's expiry but still counts", map[string][]byte{"access_token": []byte("xyzzy"), "session_token": []byte("sess"), "expires_at": ts(t2)},
			Credential{AccessToken: "xyzzy", TokenType: "Bearer", SessionToken: "sess", ExpiresAt: t2}, ""},
		{"no access token", map[string][]byte{"expires_at": ts(t1)}, Credential{}, "access_token"},
		{"no expiry", map[string][]byte{"access_token": []byte("xyzzy")}, Credential{}, "expires_at"},
		{"M2MSession without its expiry", map[string][]byte{"access_token": []byte("xyzzy"), "session_token": []byte("sess")}, Credential{}, "access_token_expires_at"},
		{"M2MSession with an empty session token", map[string][]byte{"access_token": []byte("xyzzy"), "session_token": nil, "access_token_expires_at": ts(t1)}, Credential{}, "session_token"},
		{"bad time", map[string][]byte{"access_token": []byte("xyzzy"), "expires_at": []byte("tomorrow xyzzy")}, Credential{}, "expires_at"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse(tc.data)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrNoCredential) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want ErrNoCredential naming %s", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "xyzzy") {
					t.Fatalf("error leaks a value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Version == "" {
				t.Fatal("no version")
			}
			got.Version = ""
			if got != tc.want {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestVersionFollowsContent(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	base := Credential{AccessToken: "a", TokenType: "Bearer", SessionToken: "s", ExpiresAt: exp}
	v := version(base)
	if version(base) != v {
		t.Fatal("same content, different version")
	}
	for _, c := range []Credential{
		{AccessToken: "b", TokenType: "Bearer", SessionToken: "s", ExpiresAt: exp},
		{AccessToken: "a", TokenType: "Bearer", SessionToken: "t", ExpiresAt: exp},
		{AccessToken: "a", TokenType: "Bearer", SessionToken: "s", ExpiresAt: exp.Add(time.Millisecond)},
		{AccessToken: "as", TokenType: "Bearer", SessionToken: "", ExpiresAt: exp}, // no ambiguity across fields
	} {
		if version(c) == v {
			t.Fatalf("changed content kept version %s", v)
		}
	}
}

func TestCredentialFormatsWithoutTokens(t *testing.T) {
	c := Credential{AccessToken: "at-secret", SessionToken: "st-secret", TokenType: "Bearer", ExpiresAt: time.Now(), Version: "v1"}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, c); strings.Contains(s, "secret") {
			t.Fatalf("%s leaks: %s", f, s)
		}
	}
	if got := c.Authorization(); got != "Bearer at-secret" {
		t.Fatalf("Authorization() = %q", got)
	}
}
