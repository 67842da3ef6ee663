// Package cli is kubectl-thingspace, the operator's kubectl plugin: `status` (one table across
// ThingSpaceApps, M2MSessions and CloudAuthorizations), `refresh <kind>/<name>` (asks for a refresh
// through the refresh-requested annotation and waits until the operator has acted on it) and
// `consent <name>` (a CloudAuthorization's consent link).
//
// It talks to the API server with the caller's own kubeconfig and RBAC, reads the operator's custom
// resources and, for `consent` only, the consent Secret the CloudAuthorization's status names (so only
// those allowed to read it get a link), and prints nothing else a credential could be read from. Run parses the
// command line; Runner holds the commands, each taking a controller-runtime client, an io.Writer and a
// clock, so tests drive them against a real control plane with a fixed time.
package cli
