package upstream

import (
	"errors"
	"net/url"
	"strings"
)

// ParseBaseURL validates the base URL of an API client: an absolute http or https URL with a
// host, without user info, query or fragment. It may carry a path prefix (a proxy's, or the API's
// own such as "/cloud/1"), which is kept without its trailing slash; endpoint paths are appended
// to it.
//
// Its errors start with api and quote nothing from baseURL: a URL pasted with credentials in it
// must not be echoed into a status condition.
func ParseBaseURL(api, baseURL string) (*url.URL, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, errors.New(api + ": base URL does not parse")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New(api + ": base URL must be an absolute http or https URL")
	case u.Opaque != "" || u.Host == "":
		return nil, errors.New(api + ": base URL must have a host")
	case u.User != nil:
		// Secrets never go into URLs: transport errors and proxies print URLs.
		return nil, errors.New(api + ": base URL must not carry user info")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(baseURL, "?#"):
		return nil, errors.New(api + ": base URL must not have a query or fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}
