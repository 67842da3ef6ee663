package thingspace

import (
	"net/http"
	"strings"
	"testing"
)

func TestNewValidatesBaseURL(t *testing.T) {
	tests := []struct {
		url     string
		wantErr bool
	}{
		{url: "https://thingspace.verizon.com"},
		{url: "https://thingspace.verizon.com/"},
		{url: "http://127.0.0.1:8080"},
		{url: "https://proxy.example/prefix/"},
		{url: "HTTPS://thingspace.verizon.com"},
		{url: "", wantErr: true},
		{url: "thingspace.verizon.com", wantErr: true},
		{url: "/api", wantErr: true},
		{url: "ftp://thingspace.verizon.com", wantErr: true},
		{url: "https://", wantErr: true},
		{url: "https:thingspace.verizon.com", wantErr: true},
		{url: "https://user:pa55word@thingspace.verizon.com", wantErr: true},
		{url: "https://thingspace.verizon.com?x=1", wantErr: true},
		{url: "https://thingspace.verizon.com/?", wantErr: true},
		{url: "https://thingspace.verizon.com#frag", wantErr: true},
		{url: "https://thing space", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			c, err := New(tt.url, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%q) err = %v, wantErr %v", tt.url, err, tt.wantErr)
			}
			if err == nil && c == nil {
				t.Fatal("nil client without error")
			}
			if err != nil && strings.Contains(err.Error(), "pa55word") {
				t.Errorf("error %q echoes the URL's password", err)
			}
		})
	}
}

func TestBaseURLPathPrefix(t *testing.T) {
	var gotPath string
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.Path
		respond(200, `{"access_token":"t","expires_in":60}`)(w, r)
	}))
	for _, base := range []string{srv.URL + "/proxy/ts", srv.URL + "/proxy/ts/"} {
		c, err := New(base, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Token(t.Context(), testCreds, ""); err != nil {
			t.Fatal(err)
		}
		if gotPath != "/proxy/ts/api/ts/v1/oauth2/token" {
			t.Errorf("base %q: server saw path %q", base, gotPath)
		}
	}
}

// The client must not follow redirects, and must not change the caller's http.Client to get there.
func TestNewDoesNotFollowRedirectsOrMutateClient(t *testing.T) {
	var followed bool
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed = true
			respond(200, `{"access_token":"t","expires_in":60}`)(w, r)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	hc := srv.Client()
	c, err := New(srv.URL, hc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Token(t.Context(), testCreds, "")
	if followed {
		t.Fatal("redirect followed: credentials resent to another URL")
	}
	if err == nil || !strings.Contains(err.Error(), "HTTP 307") {
		t.Fatalf("err = %v, want an HTTP 307 error", err)
	}
	if hc.CheckRedirect != nil {
		t.Error("New modified the caller's http.Client")
	}
}
