package upstream

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

const secret = "S3CRET-v4lue"

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{
			name: "status with code",
			err:  StatusError("thingspace", "token", 401, "invalid_client", Rejected, 0),
			want: `thingspace token: HTTP 401 "invalid_client" (rejected)`,
		},
		{
			name: "status with retry after",
			err:  StatusError("thingspace", "token", 503, "", Transient, 30*time.Second),
			want: `thingspace token: HTTP 503 (transient, retry after 30s)`,
		},
		{
			name: "malformed response",
			err:  NewError("thingspace", "token", 200, Transient, "malformed response: x", errors.New(secret)),
			want: `thingspace token: HTTP 200: malformed response: x (transient)`,
		},
		{
			name: "refused before sending",
			err:  NewError("thingspace", "token", 0, Invalid, "credentials: key is empty", nil),
			want: `thingspace token: credentials: key is empty (invalid)`,
		},
		{
			name: "transport",
			err:  TransportError("thingspace", "revoke", &url.Error{Op: "Post", URL: "https://h/p", Err: context.DeadlineExceeded}),
			want: `thingspace revoke: timeout (transient)`,
		},
		{
			name: "code that is not a code",
			err:  &Error{API: "thingspace", Endpoint: "token", StatusCode: 400, Code: "has space " + secret, Kind: Invalid},
			want: `thingspace token: HTTP 400 <invalid code> (invalid)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

// Transport errors can quote upstream bytes; only a fixed phrase may reach the message.
func TestTransportErrorMessageIsSanitised(t *testing.T) {
	wrap := func(err error) error { return &url.Error{Op: "Post", URL: "https://h/api", Err: err} }
	tests := []struct {
		name  string
		cause error
		want  string
	}{
		{"quoted response bytes", wrap(fmt.Errorf("net/http: HTTP/1.x transport connection broken: malformed HTTP response %q", secret)), "transport failure"},
		{"deadline", wrap(context.DeadlineExceeded), "timeout"},
		{"canceled", wrap(context.Canceled), "canceled"},
		{"net timeout", wrap(timeoutErr{}), "timeout"},
		{"dns", wrap(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host " + secret, Name: "h", IsNotFound: true}}), "dns: no such host"},
		{"refused", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), "connection refused"},
		{"unknown authority", wrap(x509.UnknownAuthorityError{}), "tls: certificate verification failed"},
		{"eof", wrap(io.ErrUnexpectedEOF), "connection closed"},
		{"too large", ErrBodyTooLarge, "response body exceeds limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := TransportError("thingspace", "token", tt.cause)
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("message %q does not contain %q", msg, tt.want)
			}
			for _, s := range []string{msg, fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%s", err), fmt.Sprintf("%#v", err)} {
				if strings.Contains(s, secret) || strings.Contains(s, "https://h") {
					t.Errorf("rendering %q leaks cause text", s)
				}
			}
			if !errors.Is(err, tt.cause) {
				t.Error("cause not reachable through errors.Is")
			}
			if !IsTransient(err) {
				t.Error("transport error is not transient")
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout " + secret }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestKindHelpers(t *testing.T) {
	plain := errors.New("not upstream")
	tests := []struct {
		name                         string
		err                          error
		transient, rejected, invalid bool
		kind                         Kind
		retryAfter                   time.Duration
		hasRetryAfter                bool
	}{
		{name: "nil", err: nil, kind: Unknown},
		{name: "plain", err: plain, kind: Unknown},
		{name: "transient with retry", err: StatusError("a", "e", 429, "", Transient, 5*time.Second), transient: true, kind: Transient, retryAfter: 5 * time.Second, hasRetryAfter: true},
		{name: "wrapped rejected", err: fmt.Errorf("reconcile: %w", StatusError("a", "e", 401, "invalid_client", Rejected, 0)), rejected: true, kind: Rejected},
		{name: "invalid", err: StatusError("a", "e", 400, "invalid_request", Invalid, 0), invalid: true, kind: Invalid},
		{name: "unknown", err: StatusError("a", "e", 302, "", Unknown, 0), kind: Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KindOf(tt.err); got != tt.kind {
				t.Errorf("KindOf = %v, want %v", got, tt.kind)
			}
			if IsTransient(tt.err) != tt.transient || (KindOf(tt.err) == Rejected) != tt.rejected || IsInvalid(tt.err) != tt.invalid {
				t.Errorf("Is* = %v/%v/%v, want %v/%v/%v", IsTransient(tt.err), KindOf(tt.err) == Rejected, IsInvalid(tt.err),
					tt.transient, tt.rejected, tt.invalid)
			}
			d, ok := RetryAfterOf(tt.err)
			if d != tt.retryAfter || ok != tt.hasRetryAfter {
				t.Errorf("RetryAfterOf = (%v, %v), want (%v, %v)", d, ok, tt.retryAfter, tt.hasRetryAfter)
			}
		})
	}
}

func TestErrorAs(t *testing.T) {
	cause := valueErr{msg: "json: " + secret} // a value type: a default %#v would print its fields
	err := fmt.Errorf("outer: %w", NewError("thingspace", "token", 200, Transient, "malformed response: not a token object", cause))
	var ue *Error
	if !errors.As(err, &ue) {
		t.Fatal("errors.As failed")
	}
	if ue.API != "thingspace" || ue.Endpoint != "token" || ue.StatusCode != 200 || ue.Kind != Transient {
		t.Errorf("fields: %+v", *ue)
	}
	if !errors.Is(err, cause) || ue.Unwrap() != error(cause) {
		t.Error("cause not unwrapped")
	}
	for _, s := range []string{err.Error(), fmt.Sprintf("%#v", ue), fmt.Sprintf("%+v", ue)} {
		if strings.Contains(s, secret) {
			t.Errorf("rendering %q prints the cause", s)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Unknown: "unknown", Transient: "transient", Rejected: "rejected", Invalid: "invalid", Kind(42): "unknown"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

type valueErr struct{ msg string }

func (e valueErr) Error() string { return e.msg }
