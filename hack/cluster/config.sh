# shellcheck shell=bash
# Configuration files of the node's daemons (containerd, kubelet, CNI), under $LAB. Sourced by up.sh.

write_containerd_config() {
  mkdir -p "$LAB/containerd"/{root,state,opt,runc-root}
  cat > "$LAB/etc/containerd.toml" <<EOF
version = 2
root = "$LAB/containerd/root"
state = "$LAB/containerd/state"
[grpc]
  address = "$LAB/containerd.sock"
  tcp_address = ""
[debug]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$LAB/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:lab"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_tcp_service = true
  # Required on machines without CAP_SYS_RESOURCE: runc cannot lower a pause container's
  # oom_score_adj to -998 there, so clamp it to containerd's own.
  restrict_oom_score_adj = true
  disable_apparmor = true
  systemd_cgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$LAB/cni/conf"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$LAB/containerd/runc-root"
EOF
}

# The pod network: Debian's bridge plugin on cni0 (created up front with the gateway address, which
# the plugin accepts as its own), host-local addresses, a default route via the node, no masquerade.
write_cni_config() {
  mkdir -p "$LAB/cni/conf"
  cat > "$LAB/cni/conf/10-lab.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "lab",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$LAB/cni/ipam"
      }
    },
    {"type": "loopback"}
  ]
}
EOF
}

write_kubelet_config() {
  mkdir -p "$LAB/kubelet/pki" "$LAB/pod-logs" "$LAB/kubelet-plugins"
  cat > "$LAB/etc/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 0.0.0.0
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
# Nothing outside the namespace: no iptables chains, no kernel defaults enforced.
makeIPTablesUtilChains: false
protectKernelDefaults: false
# No CAP_SYS_RESOURCE on these machines: the kubelet cannot lower its own score.
oomScoreAdj: 0
# The host mounts cgroup v1 (plus cgroup2 at unified); 1.35+ refuses v1 unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
failSwapOn: false
podLogsDir: $LAB/pod-logs
volumePluginDir: $LAB/kubelet-plugins
containerRuntimeEndpoint: unix://$LAB/containerd.sock
imageServiceEndpoint: unix://$LAB/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $LAB/pki/ca.crt}
authorization: {mode: AlwaysAllow}
# How soon a changed Secret reaches a mounted volume: about 1-1.5x this (see README).
syncFrequency: $NODE_SYNC_FREQUENCY
configMapAndSecretChangeDetectionStrategy: Watch
# No DNS in the lab: pods get the host's resolv.conf and no cluster DNS server.
clusterDNS: []
# Imported images cannot be pulled again: never collect them, never evict for disk pressure.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 1Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
registerNode: true
EOF
}

# The kernel tunables the kubelet insists on (setupKernelTunables), with the values it wants.
# Regular files holding them are bind-mounted over /proc/sys inside the mount namespace, so the
# kubelet reads what it wants and the host's values are never written.
KUBELET_TUNABLES=(vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1
                  kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000)

prepare_ns_dirs() {
  local t k
  mkdir -p "$LAB/ns"/{run,varlog,varlib,sysctl}
  for t in "${KUBELET_TUNABLES[@]}"; do
    k="${t%%=*}"
    echo "${t#*=}" > "$LAB/ns/sysctl/${k//\//.}"
  done
}

# The namespace's mounts and network, as a script run inside it (nsenter -n -m): nothing here
# reaches the host. /run, /var/log and /var/lib are where the kubelet and containerd 1.6 write
# regardless of their flags (shim sockets, device plugins, container logs, CNI state).
ns_setup_script() {
  local t k
  echo "set -e"
  echo "mount --bind '$LAB/ns/run' /run"
  echo "mount --bind '$LAB/ns/varlog' /var/log"
  echo "mount --bind '$LAB/ns/varlib' /var/lib"
  for t in "${KUBELET_TUNABLES[@]}"; do
    k="${t%%=*}"
    [[ -e "/proc/sys/$k" ]] || continue
    echo "mount --bind '$LAB/ns/sysctl/${k//\//.}' /proc/sys/$k"
  done
  echo "ip link set lo up"
  echo "ip addr add $SERVICE_IP/32 dev lo"
  # cni0 exists before the first pod, so the node has its address (InternalIP, advertise address,
  # host processes listening for pods) from the start; the bridge plugin accepts it as its own.
  # A fixed MAC: a bridge without one takes the lowest of its ports' MACs, so a pod's deletion can
  # change the gateway's MAC under the other pods, whose ARP entries then point nowhere for up to
  # ~45 s (seen: the uninstall drain hook and the workload stalled on their connections).
  echo "ip link add $BRIDGE address $BRIDGE_MAC type bridge"
  echo "ip addr add $NODE_IP/${POD_CIDR#*/} dev $BRIDGE"
  echo "ip link set $BRIDGE up"
}
