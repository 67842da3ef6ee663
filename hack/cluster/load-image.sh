#!/usr/bin/env bash
# Import docker-archive (or OCI) tars into the node's containerd, where the kubelet finds them
# (namespace k8s.io). Pods use them with imagePullPolicy: Never. A name without a registry is
# stored as docker.io/library/NAME, which is what the kubelet asks for when a pod says NAME.
#
# Usage: hack/cluster/load-image.sh TAR...
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "$HERE/lib.sh"
(( $# > 0 )) || die "usage: $0 TAR..."
alive holder || die "the node is not up (no holder process for LAB=$LAB): make cluster"
for tar in "$@"; do
  [[ -f "$tar" ]] || die "no such file: $tar"
  # Through stdin: the tar's path may not be the same inside the mount namespace (/run, /var/lib).
  out="$(in_ns ctr --address "$LAB/containerd.sock" -n k8s.io images import - <"$tar" 2>&1)" \
    || { echo "$out" >&2; die "importing $tar failed"; }
  log "loaded $tar: $(grep -o 'unpacking [^ ]*' <<<"$out" | cut -d' ' -f2 | tr '\n' ' ')"
done
