package credentials

import "time"

// EventKind says what an Event reports. The values are short and stable, fit for metric labels.
type EventKind string

const (
	// EventRequest: a request is sent with a credential (Version, Age, ExpiresIn). A retry is reported
	// as EventRetry instead.
	EventRequest EventKind = "request"
	// EventRejected: the upstream answered that the credential was not accepted (Reason, Version).
	EventRejected EventKind = "rejected"
	// EventWait: the transport waited for a newer credential (Waited; Newer says whether one came).
	EventWait EventKind = "wait"
	// EventRetry: the rejected request is sent again, once, with a newer credential.
	EventRetry EventKind = "retry"
	// EventNoCredential: no usable credential within MaxWait, so the request was not sent (Err).
	EventNoCredential EventKind = "no_credential"
)

// Reasons of an EventRejected.
const (
	// ReasonGatewayInvalidCredentials: a 401 with gateway fault code 900901 (a wrong or expired Bearer).
	ReasonGatewayInvalidCredentials = "gateway_900901"
	// ReasonSessionToken: an M2M error whose errorCode contains ".SessionToken." (expired or invalid).
	ReasonSessionToken = "m2m_session_token"
)

// Event is what Transport.Observe receives. It never carries a token.
type Event struct {
	Kind EventKind
	// Version of the credential used (request, rejected, retry) or received (wait, when Newer).
	Version string
	// Age is how long the source has held that credential; ExpiresIn how long it has left.
	Age, ExpiresIn time.Duration
	// Reason of a rejection.
	Reason string
	// Status is the HTTP status of a rejection.
	Status int
	// Waited is how long a wait lasted; Newer whether it ended with a newer credential.
	Waited time.Duration
	Newer  bool
	// Err is why no credential was available (EventNoCredential).
	Err error
}
