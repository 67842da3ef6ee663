package credentials

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// prepareBody returns the body of the first attempt and, when the request can be sent again, a
// function returning a fresh copy: the request's own GetBody, or a buffer of a body no longer than
// limit. A longer body is streamed as it is, and replay is nil.
func prepareBody(req *http.Request, limit int64) (io.ReadCloser, func() (io.ReadCloser, error), error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req.Body, func() (io.ReadCloser, error) { return http.NoBody, nil }, nil
	}
	if req.GetBody != nil {
		return req.Body, req.GetBody, nil
	}
	if limit < 0 || req.ContentLength > limit {
		return req.Body, nil, nil
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		_ = req.Body.Close()
		return nil, nil, fmt.Errorf("credentials: reading the request body: %w", err)
	}
	if int64(len(buf)) > limit {
		// Too long to keep: send what was read followed by the rest, and never retry.
		return readCloser{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}, nil, nil
	}
	_ = req.Body.Close()
	replay := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	body, _ := replay()
	return body, replay, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// rejection tells whether resp says the credential was not accepted, in which case the request was
// not processed: a 401 with gateway fault 900901, or an M2M errorCode containing ".SessionToken.". It
// reads at most maxErrorBody of the body and puts back what it read, so the caller sees it whole.
func rejection(resp *http.Response) string {
	if resp.StatusCode < 400 || resp.Body == nil || resp.Body == http.NoBody {
		return ""
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return "" // compressed by the caller's own choice: not ours to decode
	}
	orig := resp.Body
	buf, err := io.ReadAll(io.LimitReader(orig, maxErrorBody+1))
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(buf), errReader{err}, orig), orig}
	if err != nil || len(buf) > maxErrorBody {
		return ""
	}
	var e struct {
		Fault *struct {
			Code json.RawMessage `json:"code"`
		} `json:"fault"`
		ErrorCode string `json:"errorCode"`
	}
	if json.Unmarshal(buf, &e) != nil {
		return ""
	}
	if resp.StatusCode == http.StatusUnauthorized && e.Fault != nil && faultCode(e.Fault.Code) == "900901" {
		return ReasonGatewayInvalidCredentials
	}
	if strings.Contains(e.ErrorCode, ".SessionToken.") {
		return ReasonSessionToken
	}
	return ""
}

// faultCode reads a gateway fault code: a JSON string by the contract, a number tolerated.
func faultCode(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}

// errReader replays a read error after the bytes read before it; nil means no error (EOF).
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	return 0, io.EOF
}

// discard closes a response the caller will never see; its body was read to the end by rejection.
func discard(resp *http.Response) { _ = resp.Body.Close() }

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
