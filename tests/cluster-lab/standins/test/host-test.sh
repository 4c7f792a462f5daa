#!/usr/bin/env bash
# Exercises the stand-ins on this host, without systemd or containers:
# every "node" is a network namespace on a private bridge (nothing leaves
# it) whose commands run in their own mount namespace, with per-node
# /etc/kubernetes, /var/lib/etcd, /var/lib/kubelet, /etc/cni/net.d and
# /var/log/pods bind-mounted from $W. One host containerd (real, CRI plugin
# loaded, SystemdCgroup = true) serves every node. A socat "load balancer"
# holds the VIP 10.77.0.100:6443. Needs root, etcd-server, etcd-client,
# containerd, conntrack, iptables, openssl, socat.
#
#   host-test.sh setup | node NAME CMD... | scenario | cleanup
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=${W:-/tmp/standin-lab}
VERSION=${VERSION:-1.31.9}
NET=10.77.0
export KUBEADM_STANDIN_TIMEOUT_SCALE=${KUBEADM_STANDIN_TIMEOUT_SCALE:-0.1}
declare -A IP=([cp1]=$NET.11 [cp2]=$NET.12 [cp3]=$NET.13 [w1]=$NET.21 [w2]=$NET.22 [lb]=$NET.100)

log() { printf '\n=== %s\n' "$*"; }

pki() {
    local d=$W/pki
    mkdir -p "$d/etcd"
    ca() { openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/$1.key" -out "$d/$1.crt" -days 3650 \
        -subj "/CN=$2" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null; }
    ca ca kubernetes
    ca front-proxy-ca front-proxy-ca
    ca etcd/ca etcd-ca
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/sa.key" 2>/dev/null
    openssl pkey -in "$d/sa.key" -pubout -out "$d/sa.pub"
}

ca_hash() {
    echo "sha256:$(openssl x509 -in "$W/pki/ca.crt" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)"
}

setup() {
    mkdir -p "$W"
    "$here/../build-debs.sh" "$W/debs" "$VERSION" >/dev/null
    rm -rf "$W/root" && mkdir -p "$W/root"
    for deb in "$W"/debs/*_"$VERSION"-1.1_amd64.deb; do dpkg-deb -x "$deb" "$W/root"; done
    pki
    # containerd, as the role scripts configure it (version 2, SystemdCgroup).
    mkdir -p "$W/etc-containerd"
    cp "$here/../../../../templates/containerd/config-v2.toml" "$W/etc-containerd/config.toml"
    if ! ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1; then
        containerd --config "$W/etc-containerd/config.toml" >"$W/containerd.log" 2>&1 &
        echo $! >"$W/containerd.pid"
        sleep 3
    fi
    ip netns add sl-br
    ip -n sl-br link add br0 type bridge
    ip -n sl-br link set br0 up
    for n in "${!IP[@]}"; do
        ip netns add "sl-$n"
        ip link add "sl-$n" netns "sl-br" type veth peer name eth0 netns "sl-$n"
        ip -n sl-br link set "sl-$n" master br0 up
        ip -n "sl-$n" addr add "${IP[$n]}/24" dev eth0
        ip -n "sl-$n" link set eth0 up
        ip -n "sl-$n" link set lo up
        ip netns exec "sl-$n" sysctl -qw net.ipv4.ip_forward=1
        mkdir -p "$W/$n"/{etc-kubernetes/pki,etcd,kubelet,cni,logs,state}
    done
    ip netns exec sl-lb socat TCP-LISTEN:6443,fork,reuseaddr "TCP:${IP[cp1]}:6443" >/dev/null 2>&1 </dev/null &
    echo $! >"$W/lb.pid"
}

# node NAME CMD...: CMD inside NAME's network and mount namespaces.
node() {
    local n=$1
    shift
    # shellcheck disable=SC2016 # the inner script expands its own arguments
    ip netns exec "sl-$n" unshare --mount --propagation private env \
        PATH="$W/root/usr/bin:$PATH" STANDIN_SYSTEMCTL="$here/fake-systemctl" STANDIN_STATE="$W/$n/state" \
        KUBEADM_STANDIN_TIMEOUT_SCALE="$KUBEADM_STANDIN_TIMEOUT_SCALE" \
        bash -c '
            set -e
            d=$1; shift
            mkdir -p /etc/kubernetes
            mount --bind "$d/etc-kubernetes" /etc/kubernetes
            mkdir -p /var/lib/etcd /var/lib/kubelet /etc/cni/net.d /var/log/pods
            mount --bind "$d/etcd" /var/lib/etcd
            mount --bind "$d/kubelet" /var/lib/kubelet
            mount --bind "$d/cni" /etc/cni/net.d
            mount --bind "$d/logs" /var/log/pods
            mount --bind "$0" /etc/containerd
            exec "$@"' "$W/etc-containerd" "$W/$n" "$@"
}

init_config() {
    cat <<YAML
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
  - token: "abcdef.0123456789abcdef"
    ttl: 24h0m0s
localAPIEndpoint:
  advertiseAddress: "${IP[cp1]}"
  bindPort: 6443
nodeRegistration:
  name: "cp1"
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
    - name: node-ip
      value: "${IP[cp1]}"
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: "lab"
kubernetesVersion: "v$VERSION"
controlPlaneEndpoint: "${IP[lb]}:6443"
certificatesDir: /etc/kubernetes/pki
networking:
  podSubnet: "10.244.0.0/16"
  serviceSubnet: "10.96.0.0/12"
apiServer:
  certSANs:
    - "${IP[lb]}"
    - "${IP[cp1]}"
    - "${IP[cp2]}"
YAML
}

join_config() { # NAME HASH [control-plane]
    cat <<YAML
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    token: "abcdef.0123456789abcdef"
    apiServerEndpoint: "${IP[lb]}:6443"
    caCertHashes:
      - "$2"
nodeRegistration:
  name: "$1"
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
    - name: node-ip
      value: "${IP[$1]}"
YAML
    if [ "${3:-}" = control-plane ]; then
        cat <<YAML
controlPlane:
  localAPIEndpoint:
    advertiseAddress: "${IP[$1]}"
    bindPort: 6443
YAML
    fi
}

install_pki() { cp -a "$W/pki/." "$W/$1/etc-kubernetes/pki/"; }

etcdctl_cp1() {
    node cp1 etcdctl --endpoints "https://${IP[cp1]}:2379" --cacert /etc/kubernetes/pki/etcd/ca.crt \
        --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt --key /etc/kubernetes/pki/etcd/healthcheck-client.key "$@"
}

expect_fail() { # DESCRIPTION CMD...
    local d=$1
    shift
    if "$@"; then echo "FAIL: expected failure: $d"; exit 1; fi
    echo "ok (failed as expected): $d"
}

scenario() {
    init_config >"$W/init.yaml"
    install_pki cp1
    log "init cp1"
    node cp1 kubeadm init --config "$W/init.yaml"
    echo "livez: $(ip netns exec sl-w1 curl -ks "https://${IP[cp1]}:6443/livez")"
    log "second init without reset fails preflight"
    expect_fail "second init" node cp1 kubeadm init --config "$W/init.yaml"

    log "worker join with a wrong CA hash"
    join_config w2 "sha256:$(printf '0%.0s' $(seq 1 64))" >"$W/w2.yaml"
    expect_fail "wrong hash" node w2 kubeadm join --config "$W/w2.yaml"
    log "worker join w1"
    join_config w1 "$(ca_hash)" >"$W/w1.yaml"
    node w1 kubeadm join --config "$W/w1.yaml"
    node cp1 kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes

    log "control-plane join cp2 while another learner is pending is refused"
    etcdctl_cp1 member add fake --learner --peer-urls "https://${IP[cp3]}:2380"
    install_pki cp2
    join_config cp2 "$(ca_hash)" control-plane >"$W/cp2.yaml"
    expect_fail "second learner" node cp2 kubeadm join --config "$W/cp2.yaml"
    fake=$(etcdctl_cp1 member list | awk -F', ' '$3 == "" || $3 == "fake" {print $1}' | head -1)
    [ -n "$fake" ] && etcdctl_cp1 member remove "$fake"
    log "reset cp2 (member list before)"
    etcdctl_cp1 member list
    node cp2 kubeadm reset -f
    log "control-plane join cp2"
    install_pki cp2
    node cp2 kubeadm join --config "$W/cp2.yaml"
    etcdctl_cp1 member list -w table
    etcdctl_cp1 --endpoints "https://${IP[cp1]}:2379,https://${IP[cp2]}:2379" endpoint status -w table
    node cp1 kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes

    log "reset w1 and cp2"
    node w1 kubeadm reset -f
    node cp2 kubeadm reset -f
    etcdctl_cp1 member list -w table
    find "$W/w1" "$W/cp2" -mindepth 2 -not -path '*/state*' -not -path '*/logs*' | head
}

cleanup() {
    for n in "${!IP[@]}"; do
        if [ -d "$W/$n/state" ]; then STANDIN_STATE=$W/$n/state "$here/fake-systemctl" stop kubelet; fi
    done
    for f in lb containerd; do
        if [ -f "$W/$f.pid" ]; then kill "$(cat "$W/$f.pid")" 2>/dev/null || true; fi
        rm -f "$W/$f.pid"
    done
    for n in "${!IP[@]}" br; do ip netns del "sl-$n" 2>/dev/null || true; done
}

"$@"
