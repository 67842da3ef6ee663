// Package fakeclock tests the reconcilers on a controlled clock.
//
// Each test gets a namespace of its own, a simulator and a manager whose clock is a fake one
// (k8s.io/utils/clock/testing): the reconcilers decide with it, and it also drives the work queues, so a
// RequeueAfter fires only when the test steps the clock past it. Time edges (renewal, expiry, keep-alive,
// retry slots, keep-alive deadlines) are reached by stepping, never by sleeping through compressed
// lifetimes, and every reconcile's Result is recorded so tests can assert when the operator asked to
// look again. The package has its own envtest control plane and no manager of its own: each fixture's
// manager only sees the fixture's namespace. Everything here is in _test.go files; this file only
// documents the package.
package fakeclock
