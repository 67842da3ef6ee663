package v1alpha1

// Data keys of the Secrets the operator writes and reads. Workloads mount them as files, so they are part
// of the public contract: tests, the benchmark and the demo use these constants, never copies.
const (
	// SecretKeyAccessToken holds the access token (ThingSpaceApp, CloudAuthorization) or the app token a
	// session's calls carry as Bearer (M2MSession).
	SecretKeyAccessToken = "access_token"
	// SecretKeyTokenType holds the token type, "Bearer".
	SecretKeyTokenType = "token_type"
	// SecretKeyExpiresAt is when the access token expires: RFC 3339 in UTC with milliseconds.
	SecretKeyExpiresAt = "expires_at"
	// SecretKeyRefreshToken holds a CloudAuthorization's (rotating) refresh token.
	SecretKeyRefreshToken = "refresh_token"
	// SecretKeySessionToken holds an M2MSession's session token (the VZ-M2M-Token header value).
	SecretKeySessionToken = "session_token"
	// SecretKeyAccessTokenExpiresAt is when the app token in an M2MSession's Secret expires.
	SecretKeyAccessTokenExpiresAt = "access_token_expires_at"
)

// Data keys of the credentials Secrets users write.
const (
	// CredentialsKeyKey and CredentialsKeySecret hold an app key set (ThingSpaceApp, CloudAuthorization).
	CredentialsKeyKey    = "key"
	CredentialsKeySecret = "secret"
	// CredentialsKeyUsername and CredentialsKeyPassword hold UWS credentials (M2MSession). The operator
	// writes the new password here after a reset.
	CredentialsKeyUsername = "username"
	CredentialsKeyPassword = "password"
)

// ReservedPrefix is the prefix of the operator's own labels and annotations; users cannot set them
// through secretTemplate.
const ReservedPrefix = "thingspace.credops.io/"
