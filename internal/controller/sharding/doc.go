// Package sharding tests a fleet split across several managers on one control plane: each with its
// own label selector (--watch-label-selector) and leader-election ID, never writing the others'
// objects, and sharing the holder registry so that none revokes a token another one holds. It has
// its own envtest control plane; each test starts the managers it needs in-process. Everything here
// is in _test.go files; this file only documents the package.
package sharding
