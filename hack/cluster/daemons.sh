# shellcheck shell=bash
# Starting the node's daemons inside the namespace. Sourced by up.sh.

# start <name> CMD...: run CMD in the node's namespaces, in its own session (a Ctrl-C or a closed
# terminal does not reach it), output to $LAB/logs/<name>.log, PID to $LAB/pids/<name>.pid.
# setsid and nsenter (without -p) exec in place, so $! is the daemon itself.
start() {
  local name="$1"; shift
  setsid nsenter -t "$(pid_of holder)" -n -m -- "$@" </dev/null >>"$LAB/logs/$name.log" 2>&1 &
  echo $! > "$(pidfile "$name")"
}

# running <name>: fail (with the log's tail) when a started daemon has exited.
running() {
  alive "$1" && return 0
  log "$1 exited"
  tail_log "$1"
  return 1
}

# wait_daemon <secs> <name> <what> CMD...: wait for CMD, failing early when the daemon dies.
wait_daemon() {
  local secs="$1" name="$2" what="$3"; shift 3
  local deadline=$(( SECONDS + secs ))
  until "$@" >/dev/null 2>&1; do
    running "$name" || return 1
    if (( SECONDS >= deadline )); then
      log "timed out after ${secs}s waiting for $what"
      tail_log "$name"
      return 1
    fi
    sleep 0.2
  done
}

start_holder() {
  setsid unshare --net --mount --propagation private -- sleep infinity </dev/null >/dev/null 2>&1 &
  echo $! > "$(pidfile holder)"
  local pid=$! _
  # unshare has made the namespaces once the PID is `sleep` and its mount namespace differs.
  for _ in $(seq 50); do
    if alive holder && [[ "$(readlink "/proc/$pid/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ]]; then
      return 0
    fi
    sleep 0.1
  done
  die "the namespace holder did not start"
}

# make_cgroup_root: the kubelet's cgroupRoot in every mounted hierarchy (it refuses to start when
# the root is missing). cgroup v1 cpuset needs cpus/mems before a task can join; on a pure cgroup
# v2 host, the controllers must be enabled for the subtree.
make_cgroup_root() {
  local mnt type d
  while read -r _ mnt type _; do
    [[ "$type" == cgroup || "$type" == cgroup2 ]] || continue
    d="$mnt$CGROUP_ROOT"
    mkdir -p "$d"
    if [[ -f "$d/cpuset.cpus" && -z "$(tr -d '[:space:]' <"$d/cpuset.cpus")" ]]; then
      cat "$mnt/cpuset.cpus" > "$d/cpuset.cpus"
      cat "$mnt/cpuset.mems" > "$d/cpuset.mems"
    fi
    if [[ "$type" == cgroup2 && "$mnt" == /sys/fs/cgroup && -f "$mnt/cgroup.controllers" ]]; then
      local c
      for c in $(<"$mnt/cgroup.controllers"); do
        echo "+$c" > "$d/cgroup.subtree_control" 2>/dev/null || true
      done
    fi
  done < /proc/mounts
}

start_etcd() {
  start etcd "$K8S_BIN/etcd" --name lab --data-dir "$LAB/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster lab=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn
}

start_apiserver() {
  local p="$LAB/pki"
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2379 \
    --bind-address 0.0.0.0 --secure-port 443 --advertise-address "$NODE_IP" \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
    --client-ca-file "$p/ca.crt" --token-auth-file "$p/tokens.csv" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --kubelet-preferred-address-types Hostname,InternalIP \
    --kubelet-client-certificate "$p/kubelet-client.crt" --kubelet-client-key "$p/kubelet-client.key" \
    --allow-privileged=true --profiling=false --cert-dir "$LAB/apiserver-certs"
}

start_controller_manager() {
  local kc="$LAB/etc/kcm.kubeconfig"
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --service-account-private-key-file "$LAB/pki/sa.key" --root-ca-file "$LAB/pki/ca.crt" \
    --use-service-account-credentials --leader-elect=false \
    --bind-address 127.0.0.1 --cert-dir "$LAB/kcm-certs" --profiling=false
}

start_scheduler() {
  local kc="$LAB/etc/scheduler.kubeconfig"
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --leader-elect=false --bind-address 127.0.0.1 --cert-dir "$LAB/scheduler-certs" --profiling=false
}

start_containerd() {
  start containerd "$(command -v containerd)" --config "$LAB/etc/containerd.toml"
}

start_kubelet() {
  start kubelet "$K8S_BIN/kubelet" --config "$LAB/etc/kubelet.yaml" \
    --kubeconfig "$LAB/etc/node.kubeconfig" --root-dir "$LAB/kubelet" \
    --cert-dir "$LAB/kubelet/pki" --hostname-override localhost --node-ip "$NODE_IP" --v=2
}
