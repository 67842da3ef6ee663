# shellcheck shell=bash disable=SC2034  # the settings are used by the scripts that source this
# Shared settings and helpers of the local one-node cluster (sourced by hack/cluster/*.sh).
#
# The node lives in its own network + mount namespace, held open by one process (the "holder",
# `unshare --net --mount --propagation private sleep infinity`); every daemon is started inside it
# with nsenter, so the host's network, /run, /var/lib, /var/log and sysctls are never written.

LAB="${LAB:-/tmp/tsop-lab}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
K8S_BIN="${K8S_BIN:-$REPO/bin/k8s}"
IMAGES="${IMAGES:-$REPO/bin/images}"
CNI_BIN_DIR="${CNI_BIN_DIR:-/usr/lib/cni}"
NODE_SYNC_FREQUENCY="${NODE_SYNC_FREQUENCY:-1s}"

# Addresses inside the node's network namespace (see README, "Local cluster").
BRIDGE=cni0
BRIDGE_MAC=02:00:0a:f4:00:01  # locally administered; fixed so pod churn never changes the gateway's MAC
NODE_IP=10.244.0.1          # the bridge's address: node InternalIP, apiserver advertise address
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/24
SERVICE_IP=10.96.0.1        # the `kubernetes` Service, a /32 on lo so pods need no kube-proxy

# The kubelet's cgroup root, one per lab folder, so two labs never share (or remove) kubepods.
CGROUP_ROOT="/$(basename "$LAB")"

# Daemons in start order; down.sh stops them in reverse.
DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet)

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: ERROR: $*" >&2; exit 1; }

pidfile() { echo "$LAB/pids/$1.pid"; }

# alive <name>: the recorded process runs and is still that program (no PID reuse).
# The holder is `sleep infinity` after unshare's exec; the others are their own binaries.
alive() {
  local f pid exe want="$1"
  f="$(pidfile "$1")"
  [[ -f "$f" ]] || return 1
  pid="$(<"$f")"
  [[ "$pid" =~ ^[0-9]+$ && -d /proc/$pid ]] || return 1
  [[ "$1" == holder ]] && want="sleep"
  exe="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | awk '{print $1}')"
  [[ "$(basename "$exe")" == "$want" ]]
}

pid_of() { cat "$(pidfile "$1")"; }

# in_ns CMD...: run CMD inside the node's network + mount namespace, environment preserved.
in_ns() {
  alive holder || die "the node is not up (no holder process for $LAB): make cluster"
  nsenter -t "$(pid_of holder)" -n -m -- "$@"
}

# require_node_host: Linux, root, CAP_SYS_ADMIN, and working namespaces; otherwise a clear error.
require_node_host() {
  [[ "$(uname -s)" == Linux ]] || die "the local cluster needs Linux (this is $(uname -s))"
  [[ "$(id -u)" -eq 0 ]] || die "the local cluster needs root (namespaces, mounts, cgroups, runc)"
  local cap
  cap="$(awk '/^CapEff:/ {print $2}' /proc/self/status)"
  (( (0x$cap >> 21) & 1 )) || die "the local cluster needs CAP_SYS_ADMIN (CapEff=$cap)"
  unshare --net --mount --propagation private true 2>/dev/null \
    || die "cannot create network + mount namespaces here (unshare --net --mount failed)"
  [[ -d /sys/fs/cgroup ]] || die "no /sys/fs/cgroup"
  (( ${#LAB} < 40 )) || die "LAB=$LAB is too long: unix socket paths under it must stay < 60 chars"
}

# kubectl_ns ARGS...: kubectl with the admin kubeconfig, inside the namespace (127.0.0.1:443).
kubectl_ns() { in_ns "$K8S_BIN/kubectl" --kubeconfig "$LAB/admin.kubeconfig" "$@"; }

# tail_log <name>: the end of a daemon's log, for failure messages.
tail_log() {
  local f="$LAB/logs/$1.log"
  [[ -f "$f" ]] || return 0
  echo "----- last lines of $f -----" >&2
  tail -n "${2:-25}" "$f" >&2
  echo "-----" >&2
}

# wait_for <seconds> <what> <log-name> CMD...: poll CMD every 0.2 s; on timeout show the log and fail.
wait_for() {
  local secs="$1" what="$2" logname="$3"; shift 3
  local deadline=$(( SECONDS + secs ))
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS >= deadline )); then
      log "timed out after ${secs}s waiting for $what"
      [[ -n "$logname" ]] && tail_log "$logname"
      return 1
    fi
    sleep 0.2
  done
}

# cgroup_dirs: the kubelet's cgroup root in every mounted hierarchy (v1 controllers and unified).
cgroup_dirs() {
  local m
  for m in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    [[ -d "$m${CGROUP_ROOT#/}" ]] && echo "$m${CGROUP_ROOT#/}"
  done
  return 0
}
