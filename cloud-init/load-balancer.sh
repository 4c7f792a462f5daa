#!/usr/bin/env bash
# bootherd first boot of a load balancer: haproxy in front of every control
# plane, keepalived holding the API VIP while haproxy runs. Stacked control
# planes source this file for the same steps.

here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"

haproxy_setup() {
    step haproxy
    apt_install haproxy
    put /etc/haproxy/haproxy.cfg 0644 <"$BOOTHERD_ETC/haproxy.cfg"
    local changed=$CHANGED
    haproxy -c -q -f /etc/haproxy/haproxy.cfg
    systemctl enable haproxy
    if [ "$changed" = 1 ]; then
        systemctl restart haproxy
    fi
}

keepalived_setup() {
    step keepalived
    apt_install keepalived
    # The rendered config names the NIC by placeholder: only this system
    # knows which interface holds the node's address.
    local iface
    iface=$(ip -o -4 addr show | awk -v ip="$BOOTHERD_NODE_IP" '{ split($4, a, "/"); if (a[1] == ip) { print $2; exit } }')
    if [ -z "$iface" ]; then
        log "no interface holds $BOOTHERD_NODE_IP"
        return 1
    fi
    put /etc/keepalived/keepalived.conf 0600 < <(sed "s/@NODE_INTERFACE@/${iface}/" "$BOOTHERD_ETC/keepalived.conf")
    local changed=$CHANGED
    keepalived -t -f /etc/keepalived/keepalived.conf
    systemctl enable keepalived
    if [ "$changed" = 1 ]; then
        systemctl restart keepalived
    fi
}

# A control plane added to the config later becomes a backend: a timer
# fetches haproxy.cfg from bootherd every 2 minutes.
haproxy_sync_timer() {
    step haproxy-sync
    systemctl enable --now bootherd-haproxy-sync.timer
}

load_balancer_steps() {
    haproxy_setup
    keepalived_setup
    haproxy_sync_timer
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    load_balancer_steps
    finish
fi
