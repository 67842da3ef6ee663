// Package scoped tests how far the manager reaches: --watch-namespaces (nothing outside the watched
// namespaces is read, reconciled or written, and namespaced Roles are rights enough) and the bounds of
// its Secret cache (Secrets that merely carry the managed-by label cost no memory beyond their
// metadata). It has its own envtest control plane; each test builds the manager or cache it measures.
// Everything here is in _test.go files; this file only documents the package.
package scoped
