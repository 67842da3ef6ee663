#!/usr/bin/env bash
# Take the local cluster down without a trace (make cluster-down). Idempotent: safe when nothing is
# up, when up.sh failed half-way, or when some daemons already died.
#
# Order: kubelet; the containers (runc), containerd and its shims; kube-scheduler,
# kube-controller-manager, kube-apiserver, etcd; every other process left in the node's mount
# namespace; the holder, whose exit removes every mount and network device made inside; the
# kubelet's cgroups; $LAB (with --keep-logs, or KEEP_LOGS=1, $LAB/logs stays).
# shellcheck disable=SC2046  # PID lists are split on purpose: kill_all $(procs_where ...)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "$HERE/lib.sh"

keep_logs="${KEEP_LOGS:-0}"
[[ "${1:-}" == --keep-logs ]] && keep_logs=1
t0=$SECONDS
[[ "$(uname -s)" == Linux ]] || die "the local cluster needs Linux"
[[ "$(id -u)" -eq 0 ]] || die "cluster-down needs root"

# stop_pid <pid> <secs>: SIGTERM, then SIGKILL after <secs>; returns once it is gone.
stop_pid() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for (( i = 0; i < $2 * 10; i++ )); do
    [[ -d /proc/$pid ]] || return 0
    # A zombie child of this shell counts as gone.
    [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == Z ]] && return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for (( i = 0; i < 50; i++ )); do [[ -d /proc/$pid ]] || return 0; sleep 0.1; done
  log "PID $pid did not exit"
}

stop() {
  alive "$1" || return 0
  stop_pid "$(pid_of "$1")" "${2:-10}"
}

# procs_where <test> <arg>: PIDs (not this shell's) for which <test> <pid> <arg> holds.
procs_where() {
  local p
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    [[ "$p" == "$$" || "$p" == "$BASHPID" ]] && continue
    "$1" "$p" "$2" 2>/dev/null && echo "$p"
  done
  return 0
}
# The containerd shims of this lab name its socket on their command line.
is_shim() { tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "-address $2 "; }
# Containers live in the kubelet's cgroup root (any hierarchy).
in_cgroup_root() { grep -qE ":$2(/|$)" "/proc/$1/cgroup"; }
in_mnt_ns() { [[ "$(readlink "/proc/$1/ns/mnt")" == "$2" ]]; }
# A node program (not a user's `tail -f $LAB/logs/...`) that names the lab on its command line.
mentions_lab() {
  local argv0
  argv0="$(tr '\0' '\n' <"/proc/$1/cmdline" | head -n1)"
  case "$(basename "$argv0")" in
    etcd|kube-*|kubelet|containerd|containerd-shim*|runc|busybox) ;;
    *) return 1 ;;
  esac
  tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2/"
}

kill_all() { local p; for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done; }

# 1. The kubelet first, so nothing restarts the containers.
stop kubelet 15

# 2. The containers: runc delete --force kills and removes each one (and its cgroup).
runc_root="$LAB/containerd/runc-root/k8s.io"
if [[ -d "$runc_root" ]]; then
  run=(); alive holder && run=(nsenter -t "$(pid_of holder)" -n -m --)
  for id in $("${run[@]}" runc --root "$runc_root" list -q 2>/dev/null); do
    "${run[@]}" runc --root "$runc_root" delete --force "$id" >/dev/null 2>&1 || true
  done
fi
kill_all $(procs_where in_cgroup_root "$CGROUP_ROOT")
stop containerd 10
kill_all $(procs_where is_shim "$LAB/containerd.sock")

# 3. The control plane.
stop kube-scheduler 10
stop kube-controller-manager 10
stop kube-apiserver 15
stop etcd 10

# 4. Anything else still inside the node's mount namespace (in-node.sh commands, test helpers).
if alive holder; then
  ns="$(readlink "/proc/$(pid_of holder)/ns/mnt")"
  for p in $(procs_where in_mnt_ns "$ns"); do
    [[ "$p" == "$(pid_of holder)" ]] || stop_pid "$p" 5
  done
fi

# 5. The holder: with its exit the namespaces, and every mount, bridge and veth in them, are gone.
stop holder 5

# 6. Anything that still names the lab (a daemon whose PID file was lost).
kill_all $(procs_where mentions_lab "$LAB")

# 7. The kubelet's cgroups, deepest first (removal can lag a moment behind the last process).
for (( try = 0; try < 20; try++ )); do
  left=0
  for d in $(cgroup_dirs); do
    kill_all $(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true)
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || left=1
  done
  (( left == 0 )) && break
  sleep 0.25
done

# 8. What must be gone: report, and fail when something stayed.
problems=()
for d in $(cgroup_dirs); do problems+=("cgroup $d"); done
if [[ -d "$LAB" ]] && grep -qF " $LAB/" /proc/self/mountinfo; then
  problems+=("mounts under $LAB: $(grep -F " $LAB/" /proc/self/mountinfo | awk '{print $5}' | tr '\n' ' ')")
fi
for p in $(procs_where mentions_lab "$LAB"); do
  problems+=("process $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-100)")
done
if (( ${#problems[@]} > 0 )); then
  printf 'cluster: left behind: %s\n' "${problems[@]}" >&2
  die "cluster-down could not remove everything (see above); $LAB kept"
fi

# 9. The lab folder. --one-file-system: never follow into a mount (there are none, checked above).
if [[ -d "$LAB" ]]; then
  if (( keep_logs )); then
    find "$LAB" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf --one-file-system {} +
  else
    rm -rf --one-file-system "$LAB"
  fi
fi
log "down in $(( SECONDS - t0 ))s: no processes, mounts or cgroups left$( (( keep_logs )) && echo "; logs kept in $LAB/logs")"
