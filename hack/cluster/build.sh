#!/usr/bin/env bash
# Provide the node binaries in bin/k8s: kubelet, kube-controller-manager, kube-scheduler, kubectl,
# built from source through the Go module proxy (as hack/envtest.sh builds kube-apiserver), and the
# Debian packages the node runs on (containerd, runc, busybox-static, CNI plugins).
#
# Usage: hack/cluster/build.sh [dest-dir]     (default: bin/k8s)
# Cached: a binary that is present and reports v$K8S_VERSION is not rebuilt.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${1:-$REPO/bin/k8s}"
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
BUILD_DIR="$REPO/.envtest-build"   # throwaway modules (gitignored), shared with envtest.sh

log() { echo "node-binaries: $*" >&2; }
# shellcheck source=hack/cluster/k8s-build.sh
source "$REPO/hack/cluster/k8s-build.sh"

NODE_CMDS=(kubelet kube-controller-manager kube-scheduler kubectl)

# version_of <binary>: the gitVersion it reports (kubectl has no --version flag).
version_of() {
  local b="$1"
  [[ -x "$b" ]] || return 1
  if [[ "$(basename "$b")" == kubectl ]]; then
    "$b" version --client 2>/dev/null | sed -n 's/^Client Version: //p'
  else
    "$b" --version 2>/dev/null | awk '{print $2}'
  fi
}

current() { [[ "$(version_of "$DEST/$1")" == "v$K8S_VERSION" ]]; }

# --- Debian packages, only when missing (CI is a fresh Debian machine, as root) ---
apt_packages() {
  local missing=() p
  for p in containerd runc busybox-static containernetworking-plugins; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  # gcc -static for the pause image needs libc6-dev; the cluster scripts use openssl and ip.
  dpkg-query -W -f '${Status}' libc6-dev 2>/dev/null | grep -q 'ok installed' || missing+=(libc6-dev)
  command -v gcc >/dev/null || missing+=(gcc)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v ip >/dev/null || missing+=(iproute2)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null || { log "missing ${missing[*]} and no apt-get: install them"; return 1; }
  [[ $(id -u) -eq 0 ]] || { log "missing ${missing[*]}: run as root or install them"; return 1; }
  log "apt-get install ${missing[*]}"
  # Indexes may be absent on a fresh machine; update once if the install cannot find a package.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
           --no-install-recommends "${missing[@]}"; }
}

apt_packages

todo=()
for c in "${NODE_CMDS[@]}"; do current "$c" || todo+=("$c"); done
if [[ ${#todo[@]} -gt 0 ]]; then
  start=$SECONDS
  build_k8s node "${todo[@]}"
  for c in "${todo[@]}"; do
    cp "$BUILD_DIR/node/$c" "$DEST/.$c.tmp"   # atomic: a half-written binary never passes the check
    chmod 0755 "$DEST/.$c.tmp"
    mv -f "$DEST/.$c.tmp" "$DEST/$c"
    rm -f "$BUILD_DIR/node/$c"
  done
  log "built ${todo[*]} from source in $(( SECONDS - start ))s"
fi
for c in "${NODE_CMDS[@]}"; do
  current "$c" || { log "$DEST/$c does not report v$K8S_VERSION"; exit 1; }
  log "$(printf '%-24s' "$c") $(version_of "$DEST/$c")"
done
