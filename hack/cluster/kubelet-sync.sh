#!/usr/bin/env bash
# Restart the node's kubelet with another syncFrequency (e.g. `kubelet-sync.sh 1m`, the kubelet's
# default), to measure how long a Secret change takes to reach a mounted file at that setting.
# Running pods stay running across a kubelet restart. Works from the host or inside the namespace.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "$HERE/lib.sh"
source "$HERE/daemons.sh"

freq="${1:?usage: kubelet-sync.sh <duration, e.g. 1m>}"
[[ "$freq" =~ ^[0-9]+(ms|s|m|h)$ ]] || die "not a duration: $freq"
alive holder || die "the node is not up (no holder process for $LAB): make cluster"
cfg="$LAB/etc/kubelet.yaml"
sed -i "s/^syncFrequency: .*/syncFrequency: $freq/" "$cfg"
grep -q "^syncFrequency: $freq\$" "$cfg" || die "could not set syncFrequency in $cfg"
if alive kubelet; then
  pid="$(pid_of kubelet)"
  kill "$pid"
  for _ in $(seq 100); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
  [[ -d /proc/$pid ]] && die "the kubelet (pid $pid) did not stop"
fi
start_kubelet
sleep 1
running kubelet
log "kubelet restarted with syncFrequency $freq"
