// Package failover tests a standby replica taking over from a leader: what it has ready before it
// leads, so that its first pass needs no cache to be built. It has its own envtest control plane; the
// test starts a leader-elected manager in-process, kept standby by a Lease another holder keeps, then
// hands it the lease. Everything here is in _test.go files; this file only documents the package.
package failover
