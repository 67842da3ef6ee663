# shellcheck shell=bash
# Build Kubernetes commands (kube-apiserver, kubelet, ...) from source through the Go module proxy.
# Sourced by hack/envtest.sh and hack/cluster/build.sh, so every k8s binary in bin/k8s is built the
# same way: a throwaway module requiring k8s.io/kubernetes, its staging modules pointed at the
# published v0.x.y, and the version ldflags of kubernetes' hack/lib/version.sh.
#
# Needs: K8S_VERSION (e.g. 1.36.3), BUILD_DIR (throwaway modules), a log function.

# Only the throwaway builds get these settings:
#  - GOFLAGS=-mod=mod: the throwaway go.mod has no go.sum; let go fill it in.
#    -buildvcs=false: the build dir sits inside this repo's git checkout.
#  - GONOSUMDB: on some restricted networks the checksum database does not
#    answer for k8s.io / go.etcd.io modules. (Where GOPROXY serves /sumdb/, as
#    proxy.golang.org does, verification works and this is just a safety net.)
#  - GOWORK=off: never pick up a go.work from an enclosing directory.
build_env=(env GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
           GONOSUMDB="k8s.io,go.etcd.io${GONOSUMDB:+,$GONOSUMDB}")

# new_module <dir> <module-path>: a fresh throwaway module
# (go 1.26.0 is what k8s.io/kubernetes v1.36 requires).
new_module() {
  rm -rf "$1"; mkdir -p "$1"
  printf 'module %s\n\ngo 1.26.0\n' "$2" > "$1/go.mod"
}

# build_k8s <name> <cmd>...: build k8s.io/kubernetes/cmd/<cmd> into $BUILD_DIR/<name>/<cmd>.
# Several commands in one go build share the compile of their common packages.
build_k8s() {
  local name="$1"; shift
  local dir="$BUILD_DIR/$name" gomod staging_version="v0.${K8S_VERSION#1.}"
  new_module "$dir" "envtest-build/$name"
  # k8s.io/kubernetes' go.mod replaces its staging modules (k8s.io/api, ...) with
  # ./staging/src/... directories, so it can't be `go install`ed. Read that
  # replace list from its go.mod and point each module at the published v0.x.y.
  local dl info
  dl="$(cd "$dir" && "${build_env[@]}" go mod download -json "k8s.io/kubernetes@v$K8S_VERSION")"
  gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p' <<<"$dl")"
  info="$(sed -n 's/^[[:space:]]*"Info": "\(.*\)",*$/\1/p' <<<"$dl")"
  [[ -f "$gomod" ]] || { log "could not download k8s.io/kubernetes@v$K8S_VERSION go.mod"; return 1; }
  local edits=(-require="k8s.io/kubernetes@v$K8S_VERSION") m
  # Local-path replaces, restricted to modules kubernetes actually requires
  # (e.g. k8s.io/sample-cli-plugin is replaced but not required, and not published).
  for m in $(awk '{ sub(/^replace[[:space:]]+/, "") } $2 == "=>" && $3 ~ /^\.\.?\// { print $1 }' "$gomod"); do
    grep -Eq "^[[:space:]]*(require[[:space:]]+)?${m//./\\.}[[:space:]]+v" "$gomod" || continue
    edits+=(-replace="$m=$m@$staging_version")
  done
  log "$* v$K8S_VERSION: $(( ${#edits[@]} - 1 )) staging modules -> $staging_version"
  (cd "$dir" && go mod edit "${edits[@]}")
  # Version stamping as in kubernetes' hack/lib/version.sh, so --version is right.
  local v=k8s.io/component-base/version minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
  local ldflags="-s -w -X $v.gitVersion=v$K8S_VERSION -X $v.gitMajor=${K8S_VERSION%%.*}"
  ldflags+=" -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  # Release time from the proxy's .info (not "now"), so re-runs hit the build cache.
  ldflags+=" -X $v.buildDate=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info")"
  local pkgs=() c
  for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  # -o <dir>/ writes one binary per command (a single package needs a file name).
  local out="$dir/"; [[ $# -eq 1 ]] && out="$dir/$1"
  (cd "$dir" && "${build_env[@]}" go build -trimpath -ldflags="$ldflags" -o "$out" "${pkgs[@]}")
}
