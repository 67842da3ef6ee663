package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Kind sorts an upstream failure by what the caller should do about it.
type Kind int

const (
	// Unknown: not classified (an unexpected status, or not an upstream error at all). Treat like
	// Transient, with backoff, but expect a human to look.
	Unknown Kind = iota
	// Transient: network failure, timeout, 408, 429 or 5xx. Retry with backoff, honouring
	// RetryAfter.
	Transient
	// Rejected: the upstream rejected the credentials (or the caller's right to use them).
	// Retrying cannot help until the credentials change; for M2M logins it would lock the account.
	Rejected
	// Invalid: the request itself is wrong (a bad parameter, an unknown scope, a wrong path).
	// Retrying cannot help until the spec changes.
	Invalid
)

func (k Kind) String() string {
	switch k {
	case Transient:
		return "transient"
	case Rejected:
		return "rejected"
	case Invalid:
		return "invalid"
	default:
		return "unknown"
	}
}

// Error is the one error type upstream clients return. Its message holds only API, Endpoint,
// StatusCode, Code and a fixed description written by this module, never upstream free text,
// so it is safe for logs, events and status.
type Error struct {
	// API names the upstream, e.g. "thingspace".
	API string
	// Endpoint is the short endpoint name, e.g. "token" (the same name the Observer gets).
	Endpoint string
	// StatusCode is the HTTP status, or 0 when no response arrived or no request was sent.
	StatusCode int
	// Code is the upstream's machine-readable error code ("invalid_client", "900901"). Clients put
	// only codes from a known vocabulary here, never free text echoed by the upstream.
	Code string
	// RetryAfter is the delay the upstream asked for (Retry-After), or 0 for no hint.
	RetryAfter time.Duration
	// Kind says what to do about it.
	Kind Kind
	// Unanswered is set when the request was written out in full and then no complete response
	// came back: a timeout, a reset or a closed connection while waiting for the answer, or a 2xx
	// whose body was cut off. The upstream may have acted on the request without the caller
	// learning the outcome, which matters for requests that are not idempotent (a refresh token
	// that rotates, a password reset). A failure to connect (DNS, dial, TLS) or to write the
	// request leaves it false: the upstream cannot have acted on it. It never changes the message.
	Unanswered bool

	cause  error
	detail string // fixed vocabulary only; see describeTransport and NewError
}

// TransportError wraps a failure to complete an exchange (dial, TLS, timeout, cancellation,
// body read). It is Transient. The cause stays reachable through errors.Is/As, but only a fixed
// description of it enters the message: transport errors can quote response bytes (for example
// "malformed HTTP response %q"), and those bytes are upstream-controlled.
func TransportError(api, endpoint string, cause error) *Error {
	return &Error{API: api, Endpoint: endpoint, Kind: Transient, cause: cause, detail: describeTransport(cause)}
}

// StatusError is the error for an HTTP response the caller has classified.
func StatusError(api, endpoint string, status int, code string, kind Kind, retryAfter time.Duration) *Error {
	return &Error{API: api, Endpoint: endpoint, StatusCode: status, Code: code, Kind: kind, RetryAfter: retryAfter}
}

// NewError is the error for anything else: a request refused before sending (status 0) or a
// response that could not be used (say a malformed 200). reason enters the message verbatim, so
// it must be a fixed string written by the caller, never data from a request or a response;
// cause is reachable through errors.Is/As but never printed.
func NewError(api, endpoint string, status int, kind Kind, reason string, cause error) *Error {
	return &Error{API: api, Endpoint: endpoint, StatusCode: status, Kind: kind, cause: cause, detail: reason}
}

// Malformed is the error for a 2xx response an API client cannot use. It is Transient: a 2xx
// means the upstream accepted the credentials, so Rejected or Invalid would park the object until
// a Secret change that cannot fix anything; the causes seen in practice (a body cut off, an HTML
// page from an intercepting proxy, a gateway glitch) clear on their own, and the controllers'
// capped backoff bounds the cost of trying again. reason must be a fixed string (see NewError).
func Malformed(api, endpoint string, status int, reason string, cause error) *Error {
	return NewError(api, endpoint, status, Transient, "malformed response: "+reason, cause)
}

// Error renders e.g. `thingspace token: HTTP 401 "invalid_client" (rejected)`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.API)
	if e.Endpoint != "" {
		b.WriteString(" ")
		b.WriteString(e.Endpoint)
	}
	b.WriteString(":")
	if e.StatusCode > 0 {
		b.WriteString(" HTTP ")
		b.WriteString(strconv.Itoa(e.StatusCode))
	}
	if e.Code != "" {
		b.WriteString(" ")
		if c := safeCode(e.Code); c == e.Code {
			b.WriteString(strconv.Quote(c))
		} else {
			b.WriteString(c)
		}
	}
	if e.detail != "" {
		if e.StatusCode > 0 || e.Code != "" {
			b.WriteString(":")
		}
		b.WriteString(" ")
		b.WriteString(e.detail)
	}
	b.WriteString(" (")
	b.WriteString(e.Kind.String())
	if e.RetryAfter > 0 {
		b.WriteString(", retry after ")
		b.WriteString(e.RetryAfter.String())
	}
	b.WriteString(")")
	return b.String()
}

// GoString keeps %#v to the same safe fields; the default would dump the unexported cause.
func (e *Error) GoString() string {
	return "&upstream.Error{API:" + strconv.Quote(e.API) + ", Endpoint:" + strconv.Quote(e.Endpoint) +
		", StatusCode:" + strconv.Itoa(e.StatusCode) + ", Code:" + strconv.Quote(safeCode(e.Code)) +
		", RetryAfter:" + e.RetryAfter.String() + ", Kind:" + e.Kind.String() + unansweredGoString(e.Unanswered) + ", Message:" + strconv.Quote(e.Error()) + "}"
}

func unansweredGoString(unanswered bool) string {
	if unanswered {
		return ", Unanswered:true"
	}
	return ""
}

// Unwrap returns the underlying cause (a transport error, a JSON error, ErrBodyTooLarge), if any.
// Callers must not print it: it is raw and may quote upstream bytes.
func (e *Error) Unwrap() error { return e.cause }

// safeCode returns code, or "<invalid code>" when it is not shaped like one. Defence in depth:
// Code is an exported field, so never print something that is not shaped like a code.
func safeCode(code string) string {
	if code == "" || isCode(code) {
		return code
	}
	return "<invalid code>"
}

// isCode reports whether s looks like a machine-readable code and nothing else.
func isCode(s string) bool {
	if len(s) == 0 || len(s) > 96 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// describeTransport maps a transport error to a fixed phrase. Only the class of failure is
// kept; addresses and any quoted bytes are dropped.
func describeTransport(err error) string {
	var (
		netErr      net.Error
		dnsErr      *net.DNSError
		certErr     *tls.CertificateVerificationError
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidCert x509.CertificateInvalidError
		recordErr   tls.RecordHeaderError
		alertErr    tls.AlertError
		errno       syscall.Errno
	)
	switch {
	case err == nil:
		return "transport failure"
	case errors.Is(err, ErrBodyTooLarge):
		return "response body exceeds limit"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "dns: no such host"
		}
		return "dns lookup failed"
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &invalidCert):
		return "tls: certificate verification failed"
	case errors.As(err, &recordErr):
		return "tls: server did not answer with TLS"
	case errors.As(err, &alertErr):
		return "tls: handshake failed"
	case errors.As(err, &errno):
		return errno.Error() // "connection refused", "connection reset by peer", ...
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	default:
		return "transport failure"
	}
}

// KindOf returns the Kind of the first *Error in err's chain, or Unknown.
func KindOf(err error) Kind {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	return Unknown
}

// IsTransient reports whether err is an upstream error worth retrying with backoff.
func IsTransient(err error) bool { return KindOf(err) == Transient }

// IsInvalid reports whether the upstream (or the client, before sending) refused the request
// as malformed.
func IsInvalid(err error) bool { return KindOf(err) == Invalid }

// RetryAfterOf returns the Retry-After delay carried by err, if it carries a positive one.
func RetryAfterOf(err error) (time.Duration, bool) {
	if e, ok := errors.AsType[*Error](err); ok && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}
