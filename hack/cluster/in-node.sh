#!/usr/bin/env bash
# Run a command inside the node's network + mount namespace: there 127.0.0.1:443 is the API server
# ($LAB/admin.kubeconfig), 10.244.0.1 is the node's address on the pod bridge, and pods are reachable.
# The environment and working directory are kept; the command's exit code is passed through.
#
# Usage: hack/cluster/in-node.sh CMD [ARGS...]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "$HERE/lib.sh"
(( $# > 0 )) || die "usage: $0 CMD [ARGS...]"
alive holder || die "the node is not up (no holder process for LAB=$LAB): make cluster"
exec nsenter -t "$(pid_of holder)" -n -m --wd="$PWD" -- "$@"
