// Package policy holds the operator's decisions as pure functions of (spec, status, what a reconcile
// read, now): what to do next, when to look again, and the reason and message a condition shows.
//
// Controllers gather (read the object, its Secrets, the upstream's last answers), ask a policy, act on
// the decision and record the outcome; nothing here reads a clock, a random source or the API server,
// so every decision is table-tested with fixed values. The gates every kind shares (rejected
// credentials, manual refresh requests, backoff after a failure, failure recording) exist once, in
// gates.go; each kind's policy is in a file of its own. The approach follows cert-manager's certificate
// policies: gathering is separate from deciding, and the first gate that holds wins.
package policy
