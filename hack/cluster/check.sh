#!/usr/bin/env bash
# Check the running node end to end: a busybox pod, scheduled by kube-scheduler onto the pod network
# (not hostNetwork), reaches the API server through the `kubernetes` Service address, reaches a
# process listening on the node's address in the node namespace, and holds a ServiceAccount token
# the API server accepts.
# Busybox's own TLS cannot talk to a Go server (no signature_algorithms in its ClientHello, and its
# `wget -T` crashes), so the pod asks the API server in plain HTTP: the "400 Bad Request" a TLS port
# answers proves the path. The mounted token is then checked with kubectl from the node, unprinted.
# Run by up.sh; can be run again on its own. Exits non-zero (with the pod's log) when any part fails.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "$HERE/lib.sh"
alive holder || die "the node is not up (make cluster)"

PORT=18081
POD=lab-check
t0=$SECONDS
marker="node-$RANDOM$RANDOM"
www="$LAB/check-www"
mkdir -p "$www"
echo "$marker" > "$www/node"

# A listener on the node's address, as a simulator or webhook on the node side would be.
setsid nsenter -t "$(pid_of holder)" -n -m -- busybox httpd -f -p "$NODE_IP:$PORT" -h "$www" \
  </dev/null >"$LAB/logs/check-httpd.log" 2>&1 &
httpd=$!
cleanup() {
  kill "$httpd" 2>/dev/null || true
  kubectl_ns -n default delete pod "$POD" --ignore-not-found --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

kubectl_ns -n default delete pod "$POD" --ignore-not-found >/dev/null
kubectl_ns apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $POD, namespace: default}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: check
    image: localhost/busybox:lab
    imagePullPolicy: Never
    command:
    - sh
    - -ec
    - |
      echo "api-http: \$(timeout 5 wget -q -O- http://$SERVICE_IP:443/ 2>&1)"
      echo "node-listener: \$(timeout 5 wget -q -O- http://$NODE_IP:$PORT/node 2>&1)"
      echo checks-done
      sleep 60
EOF

logs() { kubectl_ns -n default logs "$POD" 2>/dev/null; }
phase() { kubectl_ns -n default get pod "$POD" -o jsonpath='{.status.phase}' 2>/dev/null; }
deadline=$(( SECONDS + 60 ))
until grep -qx checks-done <<<"$(logs || true)"; do
  p="$(phase || true)"
  if [[ "$p" == Failed || "$p" == Succeeded ]] || (( SECONDS >= deadline )); then
    kubectl_ns -n default describe pod "$POD" >&2 || true
    logs | sed 's/^/  pod: /' >&2 || true
    tail_log kubelet
    die "the check pod did not finish its checks (phase '${p:-none}')"
  fi
  sleep 0.3
done
out="$(logs)"
ip="$(kubectl_ns -n default get pod "$POD" -o jsonpath='{.status.podIP}')"

# The pod's mounted ServiceAccount token, as the API server sees it (never printed).
tok="$(kubectl_ns -n default exec "$POD" -- cat /var/run/secrets/kubernetes.io/serviceaccount/token)"
tokkc="$LAB/etc/check-token.kubeconfig"
(umask 077; sed '/^users:/,$d' "$LAB/admin.kubeconfig" > "$tokkc"
 printf 'users:\n- name: pod\n  user:\n    token: %s\n' "$tok" >> "$tokkc"
 printf 'contexts:\n- name: lab\n  context: {cluster: lab, user: pod}\ncurrent-context: lab\n' >> "$tokkc")
who="$(in_ns "$K8S_BIN/kubectl" --kubeconfig "$tokkc" --server "https://$SERVICE_IP:443" \
        auth whoami -o jsonpath='{.status.userInfo.username}' 2>&1 || true)"
rm -f "$tokkc"; unset tok

ok=1
grep -q '^api-http: .*400 Bad Request' <<<"$out" || ok=0
grep -qx "node-listener: $marker" <<<"$out" || ok=0
[[ "$who" == system:serviceaccount:default:default ]] || ok=0
[[ "$ip" == "${NODE_IP%.*}".* && "$ip" != "$NODE_IP" ]] || ok=0
if (( ok == 0 )); then
  echo "$out" | sed 's/^/  pod: /' >&2
  die "check pod (podIP '$ip'): expected an HTTP answer from $SERVICE_IP:443, the node listener's $marker, and the token accepted as default/default (got '$who')"
fi
kubectl_ns -n default delete pod "$POD" --wait=true --timeout=30s >/dev/null
log "check: pod $ip (scheduled, pod network) reached $SERVICE_IP:443 and $NODE_IP:$PORT; its token is $who ($(( SECONDS - t0 ))s)"
