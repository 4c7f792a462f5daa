#!/usr/bin/env bash
# bootherd first boot of a worker: `kubeadm join` with the bootstrap token
# and the pinned CA hash, once the API behind the VIP answers.

here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"

# `kubeadm reset` removes nothing a worker's join needs again.
restore_node_inputs() {
    :
}

prepare_node
if joined_already; then
    step kubeadm-join
    log "already joined"
else
    join_cluster
fi
finish
