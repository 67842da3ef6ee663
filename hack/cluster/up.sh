#!/usr/bin/env bash
# Bring up the local one-node cluster (make cluster): etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd + runc and a kubelet, all inside a network + mount namespace of their
# own, then check that a pod on the pod network reaches the API server and the node.
#
# Usage: hack/cluster/up.sh [--preflight]    (--preflight: only check this host can run it; LAB, NODE_SYNC_FREQUENCY from the environment; see lib.sh)
# Needs: Linux, root with CAP_SYS_ADMIN, make node-binaries envtest node-images.
# On failure the daemons' log tails are printed and the node is taken down again
# (CLUSTER_KEEP_ON_FAILURE=1 leaves it up for a look).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "$HERE/lib.sh"
source "$HERE/pki.sh"
source "$HERE/config.sh"
source "$HERE/daemons.sh"

t0=$SECONDS
require_node_host
alive holder && die "a cluster is already up in $LAB (holder PID $(pid_of holder)): make cluster-down first"
[[ "${1:-}" == --preflight ]] && exit 0

# --- what the node is made of ----------------------------------------------------------------
missing=()
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
  [[ -x "$K8S_BIN/$b" ]] || missing+=("$K8S_BIN/$b")
done
for b in containerd containerd-shim-runc-v2 runc ctr openssl; do
  command -v "$b" >/dev/null || missing+=("$b")
done
for p in bridge host-local loopback; do
  [[ -x "$CNI_BIN_DIR/$p" ]] || missing+=("$CNI_BIN_DIR/$p")
done
for i in pause busybox; do
  [[ -f "$IMAGES/$i.tar" ]] || missing+=("$IMAGES/$i.tar")
done
(( ${#missing[@]} == 0 )) || die "missing: ${missing[*]} (make node-binaries envtest node-images)"

# --- leftovers -------------------------------------------------------------------------------
if [[ -e "$LAB" ]]; then
  log "removing the stale $LAB"
  "$HERE/down.sh" >/dev/null
  rm -rf "$LAB"
fi
for d in $(cgroup_dirs); do die "leftover cgroup $d (make cluster-down)"; done

on_exit() {
  local rc=$?
  (( rc == 0 )) && return 0
  log "FAILED after $(( SECONDS - t0 ))s (logs in $LAB/logs)"
  if [[ "${CLUSTER_KEEP_ON_FAILURE:-}" == 1 ]]; then
    log "left up for a look (CLUSTER_KEEP_ON_FAILURE=1); make cluster-down removes it"
  else
    "$HERE/down.sh" --keep-logs >&2 || true
  fi
  exit "$rc"
}
trap on_exit EXIT

# --- files -----------------------------------------------------------------------------------
mkdir -p "$LAB"/{pids,logs,etc}
make_pki
prepare_ns_dirs
write_cni_config
write_containerd_config
write_kubelet_config

# --- namespace -------------------------------------------------------------------------------
start_holder
nsenter -t "$(pid_of holder)" -n -m -- bash -c "$(ns_setup_script)"
make_cgroup_root

# --- control plane ---------------------------------------------------------------------------
start_etcd
start_apiserver
wait_daemon 60 kube-apiserver "kube-apiserver /readyz" kubectl_ns get --raw /readyz
running etcd
start_controller_manager
start_scheduler

# --- node ------------------------------------------------------------------------------------
start_containerd
ctr_ns() { in_ns ctr --address "$LAB/containerd.sock" "$@"; }
wait_daemon 30 containerd "containerd's socket" ctr_ns version
for i in pause busybox; do
  ctr_ns -n k8s.io images import "$IMAGES/$i.tar" >>"$LAB/logs/images.log" 2>&1 \
    || { tail_log images; die "importing $IMAGES/$i.tar failed"; }
done
start_kubelet

node_ready() {
  [[ "$(kubectl_ns get node localhost \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}
wait_daemon 90 kubelet "node localhost Ready" node_ready
running kube-controller-manager
wait_daemon 60 kube-controller-manager "ServiceAccount default/default" \
  kubectl_ns -n default get serviceaccount default
running kube-scheduler
up_secs=$(( SECONDS - t0 ))

# --- a pod on the pod network ----------------------------------------------------------------
"$HERE/check.sh"

cat <<EOF
cluster: up in ${up_secs}s, checked in $(( SECONDS - t0 - up_secs ))s (LAB=$LAB)
  node            localhost ($NODE_IP on $BRIDGE, pods $POD_CIDR), syncFrequency $NODE_SYNC_FREQUENCY
  API server      https://127.0.0.1:443 (node), https://$SERVICE_IP:443 (pods)
  kubeconfig      $LAB/admin.kubeconfig (system:masters; valid inside the node's namespace)
  in the node     hack/cluster/in-node.sh $K8S_BIN/kubectl --kubeconfig $LAB/admin.kubeconfig get pods -A
  images          hack/cluster/load-image.sh TAR...   (pods: imagePullPolicy: Never)
  logs            $LAB/logs/*.log
  down            make cluster-down
EOF
