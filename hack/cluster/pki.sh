# shellcheck shell=bash
# Certificates, keys, tokens and kubeconfigs of the local cluster, under $LAB/pki and $LAB/etc.
# Sourced by up.sh. Nothing here is printed: the tokens and keys stay in 0600 files.

# cert <name> <subject> <ext>: an EC P-256 key and a certificate signed by the lab CA.
cert() {
  local name="$1" subj="$2" ext="$3" d="$LAB/pki"
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/$name.key" 2>/dev/null
  openssl req -new -key "$d/$name.key" -subj "$subj" -out "$d/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" > "$d/$name.ext"
  openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null
  rm -f "$d/$name.csr" "$d/$name.ext"
}

# token: 32 random hex characters.
token() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# kubeconfig <file> <user> <token>: a kubeconfig for https://127.0.0.1:443 (inside the namespace).
kubeconfig() {
  local ca
  ca="$(base64 -w0 <"$LAB/pki/ca.crt")"
  (umask 077; cat > "$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://127.0.0.1:443
    certificate-authority-data: $ca
users:
- name: $2
  user:
    token: $3
contexts:
- name: lab
  context: {cluster: lab, user: $2}
current-context: lab
KC
  )
}

make_pki() {
  local d="$LAB/pki"
  mkdir -p "$d"; chmod 700 "$d"
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$d/ca.key" -subj "/CN=tsop-lab-ca" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$d/ca.crt" 2>/dev/null
  # The names and addresses pods and host processes use for the API server.
  cert apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$SERVICE_IP,IP:$NODE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # The API server's client certificate towards the kubelet (logs, exec, port-forward).
  cert kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  # ServiceAccount token signing.
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  # Static tokens: token,user,uid,"group1,group2".
  local admin kcm sched node
  admin="$(token)" kcm="$(token)" sched="$(token)" node="$(token)"
  (umask 077; cat > "$d/tokens.csv" <<TOK
$admin,lab-admin,lab-admin,"system:masters"
$kcm,system:kube-controller-manager,system:kube-controller-manager
$sched,system:kube-scheduler,system:kube-scheduler
$node,system:node:localhost,system:node:localhost,"system:nodes"
TOK
  )
  chmod 600 "$d"/*.key
  mkdir -p "$LAB/etc"
  kubeconfig "$LAB/admin.kubeconfig" lab-admin "$admin"
  kubeconfig "$LAB/etc/kcm.kubeconfig" system:kube-controller-manager "$kcm"
  kubeconfig "$LAB/etc/scheduler.kubeconfig" system:kube-scheduler "$sched"
  kubeconfig "$LAB/etc/node.kubeconfig" system:node:localhost "$node"
}
