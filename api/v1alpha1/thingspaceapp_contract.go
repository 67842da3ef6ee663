package v1alpha1

// Event reasons of ThingSpaceApps (Refreshed, RefreshFailed and the Lifetime ones are CloudAuthorizations' too).
// Users and alerts match on them; keep the spelling.
const (
	// EventRefreshed: a new token was written to the Secret.
	EventRefreshed = "Refreshed"
	// EventRefreshFailed: a refresh failed transiently; the operator backs off and retries.
	EventRefreshFailed = "RefreshFailed"
	// EventRevoked: the token was revoked on deletion (revokeOnDelete).
	EventRevoked = "Revoked"
	// EventRevokeSkipped: the token was not revoked on deletion, and why (another object still holds
	// it, the credentials are gone, ...).
	EventRevokeSkipped = "RevokeSkipped"
	// EventRevokeFailed: revoking on deletion failed for good; the token expires on its own.
	EventRevokeFailed = "RevokeFailed"
	// EventRevokedByOtherHolder: another object holding the same token revoked it (its refresh request
	// or renewBefore rotation); this one took the new token.
	EventRevokedByOtherHolder = "RevokedByOtherHolder"
	// EventLifetimeCapped: the upstream announced a lifetime longer than the documented maximum the
	// operator believes (a day); the token is renewed as if it had that one.
	EventLifetimeCapped = "LifetimeCapped"
	// EventLifetimeAssumed: the upstream announced no lifetime; a short one is assumed.
	EventLifetimeAssumed = "LifetimeAssumed"
	// EventHandedOver: the other key set's token was published (spec.standbyCredentialsSecretRef); the
	// replaced token stays valid until it expires.
	EventHandedOver = "HandedOver"
)

// ProvenanceAnnotation, on a ThingSpaceApp's Secret, records which endpoint, key and secret issued the
// token in it, as a SHA-256 digest of the four. A token whose provenance does not match the app's
// current endpoint and credentials is never published or shared; the operator fetches one with the
// current ones (issue 8 scenario 2).
const ProvenanceAnnotation = ReservedPrefix + "issued-by"

// ExpiryProvenanceAnnotation, on a ThingSpaceApp's Secret, binds its expires_at to its token, as a
// SHA-256 digest of the endpoint, key, secret, token and expiry: the operator wrote that expiry with
// that token. A manager that finds it matching believes the Secret's expiry even when the status write
// that should have followed the Secret's was lost (a kill between the two), instead of asking the
// upstream again for a token it holds.
const ExpiryProvenanceAnnotation = ReservedPrefix + "expiry-issued-by"
