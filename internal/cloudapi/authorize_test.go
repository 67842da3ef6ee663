package cloudapi

import (
	"net/url"
	"testing"
)

func TestAuthorizeURL(t *testing.T) {
	c, err := New(DefaultBaseURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "https://api.cloudapi.verizon.com/cloud/1/oauth2/authorize?"
	tests := []struct {
		name                                 string
		clientID, redirectURI, state, device string
		want                                 string
	}{
		{
			name:     "no device id",
			clientID: "AbCkey123", redirectURI: "https://app.example/cb", state: "s1",
			want: prefix + "client_id=AbCkey123&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&response_type=code&state=s1",
		},
		{
			name:     "device id last",
			clientID: "k", redirectURI: "https://app.example/cb", state: "s1", device: "iOS",
			want: prefix + "client_id=k&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&response_type=code&state=s1&deviceid=iOS",
		},
		{
			name:     "case preserved, never normalised",
			clientID: "K", redirectURI: "HTTPS://App.Example:443/CallBack/../X/?Q=A", state: "MiXeD", device: "Android",
			want: prefix + "client_id=K&redirect_uri=HTTPS%3A%2F%2FApp.Example%3A443%2FCallBack%2F..%2FX%2F%3FQ%3DA&response_type=code&state=MiXeD&deviceid=Android",
		},
		{
			name:     "special characters escaped",
			clientID: "a&b=c", redirectURI: "https://app.example/cb?x=1&y=a b#frag", state: "s/t+a te%", device: "dev&id=1",
			want: prefix + "client_id=a%26b%3Dc&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%3Fx%3D1%26y%3Da+b%23frag&response_type=code&state=s%2Ft%2Ba+te%25&deviceid=dev%26id%3D1",
		},
		{
			name:     "unicode",
			clientID: "k", redirectURI: "https://app.example/é", state: "ü",
			want: prefix + "client_id=k&redirect_uri=https%3A%2F%2Fapp.example%2F%C3%A9&response_type=code&state=%C3%BC",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.AuthorizeURL(tt.clientID, tt.redirectURI, tt.state, tt.device)
			if got != tt.want {
				t.Fatalf("AuthorizeURL =\n %s\nwant\n %s", got, tt.want)
			}
			// What Verizon decodes is exactly what was given.
			u, err := url.Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			if q.Get("client_id") != tt.clientID || q.Get("redirect_uri") != tt.redirectURI || q.Get("state") != tt.state ||
				q.Get("response_type") != "code" || q.Get("deviceid") != tt.device || q.Has("deviceid") != (tt.device != "") {
				t.Errorf("decoded query %v", q)
			}
		})
	}
}
