#!/usr/bin/env bash
# Build the node's two images as docker-archive tars, deterministically (same bytes every run):
#   bin/images/pause.tar    localhost/pause:lab    a static C pause binary (the sandbox image)
#   bin/images/busybox.tar  localhost/busybox:lab  Debian's busybox-static with its applet links
# No Docker: a layer is a tar made with fixed owners and times, the config and manifest are JSON.
#
# Usage: hack/cluster/images.sh [dest-dir]    (default: bin/images)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${1:-$REPO/bin/images}"
mkdir -p "$DEST"
log() { echo "node-images: $*" >&2; }
umask 022   # directory and file modes are part of the layer's bytes
ARCH="$(dpkg --print-architecture 2>/dev/null || go env GOARCH)"   # amd64, arm64: OCI names too

BUSYBOX="${BUSYBOX:-/bin/busybox}"
if ! "$BUSYBOX" --list >/dev/null 2>&1; then
  log "$BUSYBOX missing (apt-get install busybox-static, or make node-binaries)"; exit 1
fi
command -v gcc >/dev/null || { log "gcc missing (apt-get install gcc libc6-dev)"; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

sha() { sha256sum "$1" | cut -d' ' -f1; }

# det_tar <out> <dir> [names...]: a tar of <dir>'s contents (or of the names in it) that depends
# only on names, modes and bytes.
det_tar() {
  local out="$1" dir="$2"; shift 2
  find "$dir" -exec touch -h -d @0 {} +
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
      --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
      -C "$dir" -cf "$out" "${@:-.}"
}

# archive <out.tar> <ref> <rootfs-dir> <config-json-fragment>: one-layer docker-archive.
archive() {
  local out="$1" ref="$2" root="$3" cfg="$4" img="$work/img-$RANDOM"
  mkdir -p "$img"
  det_tar "$img/layer.tar" "$root"
  local diff; diff="$(sha "$img/layer.tar")"
  mkdir -p "$img/$diff"; mv "$img/layer.tar" "$img/$diff/layer.tar"
  printf '{"architecture":"%s","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"hack/cluster/images.sh"}]}' \
    "$ARCH" "$cfg" "$diff" > "$img/config.json"
  local c; c="$(sha "$img/config.json")"
  mv "$img/config.json" "$img/$c.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$c" "$ref" "$diff" \
    > "$img/manifest.json"
  det_tar "$out.tmp" "$img" manifest.json "$c.json" "$diff"
  mv -f "$out.tmp" "$out"
  log "$ref -> $out (config sha256:${c:0:12})"
}

# pause
mkdir -p "$work/pause"
gcc -static -Os -s -o "$work/pause/pause" "$REPO/hack/cluster/pause.c"
archive "$DEST/pause.tar" localhost/pause:lab "$work/pause" '{"Entrypoint":["/pause"]}'

# busybox: the binary, one symlink per applet, and the few files a shell expects.
r="$work/busybox"
mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/root"
cp "$BUSYBOX" "$r/bin/busybox"; chmod 0755 "$r/bin/busybox"
for a in $("$BUSYBOX" --list); do [[ "$a" == busybox ]] || ln -s busybox "$r/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$r/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' > "$r/etc/group"
chmod 1777 "$r/tmp"
archive "$DEST/busybox.tar" localhost/busybox:lab "$r" \
  '{"Env":["PATH=/bin"],"Cmd":["sh"]}'
