#!/usr/bin/env bash
# Provide kube-apiserver and etcd for envtest (KUBEBUILDER_ASSETS) in <dest-dir>.
#
# Usage: hack/envtest.sh [dest-dir]        (default: bin/k8s)
#
# 1. If <dest>/kube-apiserver and <dest>/etcd already run, do nothing (cache).
# 2. Try setup-envtest, which downloads release binaries (needs internet).
# 3. Otherwise build both from source, fetching only from the Go module proxy
#    (works where dl.k8s.io / GitHub are unreachable but GOPROXY is not).
#
# Versions can be overridden from the environment.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"                   # kube-apiserver version
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"                # go.etcd.io/etcd/server/v3
# No tools/setup-envtest/v0.24.x tag exists, so use the latest tagged release.
SETUP_ENVTEST_VERSION="${SETUP_ENVTEST_VERSION:-v0.25.1}"
SETUP_ENVTEST_TIMEOUT="${SETUP_ENVTEST_TIMEOUT:-60}"   # seconds

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$REPO/bin/k8s}"
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"       # tests use the absolute path
BUILD_DIR="$REPO/.envtest-build"  # throwaway modules (gitignored)

log() { echo "envtest: $*" >&2; }

runs() { [[ -x "$1" ]] && "$1" --version >/dev/null 2>&1; }

have_binaries() { runs "$DEST/kube-apiserver" && runs "$DEST/etcd"; }

report() {
  log "kube-apiserver: $("$DEST/kube-apiserver" --version 2>&1 | head -n1)"
  log "etcd:           $("$DEST/etcd" --version 2>&1 | head -n1)"
  log "binaries in $DEST (KUBEBUILDER_ASSETS=$DEST)"
}

# Copy $1 into $DEST atomically, so a half-written binary never passes the cache check.
install_bin() {
  cp "$1" "$DEST/.$(basename "$1").tmp"
  chmod 0755 "$DEST/.$(basename "$1").tmp"
  mv -f "$DEST/.$(basename "$1").tmp" "$DEST/$(basename "$1")"
}

if have_binaries; then
  report
  exit 0
fi

# --- a. setup-envtest (downloads prebuilt binaries) ---------------------------
try_setup_envtest() {
  local tmp dir
  GOBIN="$REPO/bin" go install \
    "sigs.k8s.io/controller-runtime/tools/setup-envtest@$SETUP_ENVTEST_VERSION" || return 1
  tmp="$(mktemp -d)"
  # Without internet the download hangs or fails; don't let it stall the build.
  local to=()
  command -v timeout >/dev/null && to=(timeout "$SETUP_ENVTEST_TIMEOUT")
  if dir="$(${to[@]+"${to[@]}"} "$REPO/bin/setup-envtest" use "${K8S_VERSION%.*}.x" \
              --bin-dir "$tmp" -p path)" && [[ -n "$dir" ]] \
     && runs "$dir/kube-apiserver" && runs "$dir/etcd"; then
    install_bin "$dir/kube-apiserver"
    install_bin "$dir/etcd"
    [[ -x "$dir/kubectl" ]] && install_bin "$dir/kubectl"
    chmod -R u+w "$tmp"; rm -rf "$tmp"   # setup-envtest makes its files read-only
    return 0
  fi
  chmod -R u+w "$tmp"; rm -rf "$tmp"
  return 1
}

log "trying setup-envtest $SETUP_ENVTEST_VERSION (k8s ${K8S_VERSION%.*}.x)"
if try_setup_envtest; then
  report
  exit 0
fi
log "setup-envtest failed; building from source via the Go module proxy ($(go env GOPROXY))"

# --- b. build from source through the module proxy -----------------------------
# shellcheck source=hack/cluster/k8s-build.sh
source "$REPO/hack/cluster/k8s-build.sh"   # build_env, new_module, build_k8s (shared with the node)

build_etcd() {
  local dir="$BUILD_DIR/etcd"
  new_module "$dir" envtest-build/etcd
  # Same as etcd's own main.go; etcd's root module also has replace directives.
  cat > "$dir/main.go" <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  (cd "$dir" && go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION")
  log "etcd $ETCD_VERSION"
  (cd "$dir" && "${build_env[@]}" go build -trimpath -ldflags="-s -w" -o "$dir/etcd" .)
}

start=$SECONDS
build_k8s kube-apiserver kube-apiserver
build_etcd
install_bin "$BUILD_DIR/kube-apiserver/kube-apiserver"
install_bin "$BUILD_DIR/etcd/etcd"
rm -f "$BUILD_DIR/kube-apiserver/kube-apiserver" "$BUILD_DIR/etcd/etcd"  # ~130MB, now in $DEST
log "built from source in $(( SECONDS - start ))s"

# --- c. verify ------------------------------------------------------------------
if ! have_binaries; then
  log "built binaries do not run"
  exit 1
fi
report
