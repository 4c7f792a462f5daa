#!/usr/bin/env bash
# bootherd first boot of a control plane: the shared PKI into
# /etc/kubernetes/pki, then bootherd's control-plane slot says which to run:
# `kubeadm init` (the first control plane to ask while none has joined; it
# also applies Calico) or `kubeadm join --control-plane` (one at a time:
# etcd admits one learner at a time). No --upload-certs: every control
# plane already has the PKI.

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

# After `kubeadm reset` (which empties /etc/kubernetes/pki, but leaves the
# etcd member a failed join added: bootherd removes that one, or the next
# join could not add this node beside it).
restore_node_inputs() {
    install_pki
    curl -fsS -X DELETE --max-time 60 "$BOOTHERD_ETCD_MEMBER_URL" ||
        log "bootherd could not remove this node's stale etcd member"
}

# Prints `init` or `join` once bootherd grants this node the slot; waits
# (as long as it takes) while another control plane holds it.
take_slot() {
    local out code body
    while :; do
        out=$(curl -sS -X POST --max-time 20 -w '\n%{http_code}' "$BOOTHERD_SLOT_URL" 2>&1) || true
        code=${out##*$'\n'}
        body=${out%$'\n'*}
        body=${body%$'\n'}
        if [ "$code" = 200 ] && { [ "$body" = init ] || [ "$body" = join ]; }; then
            printf '%s\n' "$body"
            return 0
        fi
        # stdout is the answer: the log goes to stderr (the log file).
        log "no control-plane slot yet (HTTP $code): $body" >&2
        sleep 15
    done
}

# Renews the slot every 50 s while this node works (bootherd passes on a
# slot 3 minutes after its holder's last word, so a dead holder cannot stall
# the cluster); ends with the script.
renew_slot() {
    while :; do
        sleep 50
        curl -fsS -o /dev/null -X POST --max-time 20 "$BOOTHERD_SLOT_URL" ||
            log "could not renew the control-plane slot"
    done
}

# In external mode the load balancers hold the VIP: `kubeadm init`'s later
# phases reach the new API server through it, so init starts only once
# something listens there. (A refused or unanswered connection is curl's 7
# or 28; anything else, TLS failures included, means haproxy accepted.)
wait_for_vip() {
    step wait-for-vip
    local rc
    while :; do
        rc=0
        curl -ks -o /dev/null --max-time 5 "https://${BOOTHERD_ENDPOINT}/" || rc=$?
        case "$rc" in
            7 | 28) log "nothing listens on the VIP ${BOOTHERD_ENDPOINT} yet (curl exit $rc); again in 10s" ;;
            *) return 0 ;;
        esac
        sleep 10
    done
}

calico() {
    step calico
    export KUBECONFIG=/etc/kubernetes/admin.conf
    # Server-side: the operator's CRDs are too large for client-side apply.
    retry 10 kubectl apply --server-side --force-conflicts -f "$BOOTHERD_CALICO_MANIFEST"
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
action_file=$BOOTHERD_STATE/control-plane-action
if joined_already; then
    step control-plane-slot
    log "already part of the cluster ($(cat "$action_file" 2>/dev/null || echo join))"
else
    step control-plane-slot
    action=$(take_slot)
    renew_slot &
    SLOT_RENEWER=$!
    install -d -m 0755 "$BOOTHERD_STATE"
    printf '%s\n' "$action" >"$action_file"
    log "bootherd's slot says: $action"
    if [ "$action" = init ]; then
        wait_for_vip
        kubeadm_config init
        step kubeadm-init
        kubeadm_attempts 10 kubeadm init --config "$KUBEADM_CONFIG"
    else
        join_cluster
    fi
fi
if [ "$(cat "$action_file" 2>/dev/null)" = init ]; then
    calico
fi
finish
