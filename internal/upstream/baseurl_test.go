package upstream

import (
	"strings"
	"testing"
)

func TestParseBaseURL(t *testing.T) {
	tests := []struct {
		in, wantPath string
		wantErr      string
	}{
		{in: "https://h.example", wantPath: ""},
		{in: "https://h.example/", wantPath: ""},
		{in: "http://127.0.0.1:8080", wantPath: ""},
		{in: "https://api.example/cloud/1", wantPath: "/cloud/1"},
		{in: "https://proxy.example/prefix//", wantPath: "/prefix"},
		{in: "HTTPS://h.example", wantPath: ""},
		{in: "", wantErr: "absolute http or https"},
		{in: "h.example", wantErr: "absolute http or https"},
		{in: "/api", wantErr: "absolute http or https"},
		{in: "ftp://h.example", wantErr: "absolute http or https"},
		{in: "https://", wantErr: "must have a host"},
		{in: "https:h.example", wantErr: "must have a host"},
		{in: "https://user:pa55word@h.example", wantErr: "user info"},
		{in: "https://h.example?x=1", wantErr: "query or fragment"},
		{in: "https://h.example/?", wantErr: "query or fragment"},
		{in: "https://h.example#frag", wantErr: "query or fragment"},
		{in: "https://h space", wantErr: "does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := ParseBaseURL("api", tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "api: ") {
					t.Fatalf("err = %v, want one starting with the API and containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "pa55word") || strings.Contains(err.Error(), "h.example") {
					t.Errorf("error %q quotes the URL", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Path != tt.wantPath {
				t.Errorf("Path = %q, want %q", u.Path, tt.wantPath)
			}
		})
	}
}
