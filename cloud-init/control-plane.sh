#!/usr/bin/env bash
# bootherd first boot of a control plane: the shared PKI into
# /etc/kubernetes/pki, then `kubeadm init` (the first control plane, which
# also applies Calico) or `kubeadm join` as a control plane (the others).
# No --upload-certs: every control plane already has the PKI.

here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"
if [ "$BOOTHERD_HOLDS_VIP" = 1 ]; then
    # shellcheck source-path=SCRIPTDIR source=load-balancer.sh
    . "$here/load-balancer.sh"
fi

install_pki() {
    local f mode
    while IFS= read -r f; do
        mode=0644
        case "$f" in
            *.key) mode=0600 ;;
        esac
        put "/etc/kubernetes/pki/$f" "$mode" <"$BOOTHERD_ETC/pki/$f"
    done < <(cd "$BOOTHERD_ETC/pki" && find . -type f -printf '%P\n' | sort)
}

# After `kubeadm reset` (which empties /etc/kubernetes/pki).
restore_node_inputs() {
    install_pki
}

calico() {
    step calico
    export KUBECONFIG=/etc/kubernetes/admin.conf
    local url="https://raw.githubusercontent.com/projectcalico/calico/${BOOTHERD_CALICO_VERSION}/manifests/tigera-operator.yaml"
    # Server-side: the operator's CRDs are too large for client-side apply.
    retry 10 kubectl apply --server-side --force-conflicts -f "$url"
    retry 20 kubectl wait --for=condition=established --timeout=60s \
        crd/installations.operator.tigera.io crd/apiservers.operator.tigera.io
    retry 10 kubectl apply -f "$BOOTHERD_ETC/calico-installation.yaml"
}

prepare_node
if [ "$BOOTHERD_HOLDS_VIP" = 1 ]; then
    load_balancer_steps
fi
step pki
install_pki
kubeadm_config
if [ "$BOOTHERD_FIRST_CONTROL_PLANE" = 1 ]; then
    step kubeadm-init
    if [ -f /etc/kubernetes/admin.conf ]; then
        log "already initialised"
    else
        kubeadm_attempts 3 kubeadm init --config "$KUBEADM_CONFIG"
    fi
    calico
else
    join_cluster
fi
finish
