package v1alpha1

// SessionLoginAnnotation, on an M2MSession's or ClusterM2MSession's Secret, records the login that
// produced its session: the login time (RFC 3339) and, after a "/", a SHA-256 digest binding that time
// to the session token, access token and access_token_expires_at written with it. A manager whose
// status does not know that login (the status write that follows the Secret's was lost: a kill between
// the two) takes it from there instead of logging in again for a session it holds.
const SessionLoginAnnotation = ReservedPrefix + "session-login"
