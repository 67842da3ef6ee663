#!/usr/bin/env bash
# Show the local cluster: which daemons run (PID), and the node and pods as the API server sees them.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "$HERE/lib.sh"
if ! alive holder; then
  log "down (no holder process for LAB=$LAB)"
  exit 1
fi
for d in holder "${DAEMONS[@]}"; do
  if alive "$d"; then printf '  %-24s PID %s\n' "$d" "$(pid_of "$d")"; else printf '  %-24s not running\n' "$d"; fi
done
kubectl_ns get nodes -o wide
kubectl_ns get pods -A -o wide
