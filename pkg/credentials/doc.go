// Package credentials lets a Go workload use the credentials thingspace-operator publishes, without ever
// fetching a token itself: the operator stays the single writer of every token, and this package only
// reads what it wrote.
//
// A [Source] yields the current [Credential] of one operator Secret, whichever kind wrote it:
//
//   - a ThingSpaceApp or CloudAuthorization Secret (access_token, token_type, expires_at): a Bearer token;
//   - an M2MSession Secret (session_token, access_token, access_token_expires_at): the Bearer token and
//     the VZ-M2M-Token session header, always taken from the same Secret write.
//
// The kind is told from the keys. A Source never hands out a credential past its ExpiresAt (the earliest
// expiry of what it carries): it answers [ErrExpired] instead.
//
// Two sources exist. [DirSource] reads the Secret mounted as a volume; it watches the directory (not the
// files, whose watches die at the kubelet's ..data symlink swap) and also polls, and reads every key of
// one ..data generation, so a reader never mixes an old session token with a new access token. The
// kubelet refreshes a mounted Secret only at the pod's next sync (up to about 90 s with its default
// syncFrequency), so a mounted file can lag a rotation. [SecretSource] reads the Secret through the API
// server (get and watch on that one Secret, so a Role with resourceNames suffices) and sees a rotation
// within the operator's own latency.
//
// [Transport] is an http.RoundTripper that sets Authorization (and VZ-M2M-Token for an M2M session) from
// a Source. When the gateway answers that the credential was not accepted (a 401 with fault code 900901,
// or an M2M errorCode containing ".SessionToken."; both mean the request was not processed), it re-reads
// the Source, waits at most MaxWait for a newer credential if there is none, and retries the request
// once. Its Observe hook reports requests, retries, waits and the credential's age, so a caller can count
// them in its own metrics.
//
// Tokens never appear in errors, in events or in a Credential's String form.
package credentials
