#!/usr/bin/env bash
# bootherd as the shared harness's "ours" server, for every role. The harness
# runs this inside its server namespace with BENCH_* set (see
# ../shared/bench/README.md); BENCH_ROLE says which protocol it measures.
# It writes a config for that role and runs `bootherd serve` with it.
set -euo pipefail
: "${BOOTHERD_BIN:?set BOOTHERD_BIN to the bootherd binary}"
d="$BENCH_STATE_DIR/bootherd"
mkdir -p "$d"

dhcp_mode=off tftp_enabled=false
case "$BENCH_ROLE" in
    dhcp) dhcp_mode=authoritative ;;
    tftp) tftp_enabled=true ;;
    http)
        # The harness fetches /boot.ipxe and compares it with its own file:
        # install that file as the override of the first-hop script template,
        # so the request goes through bootherd's real boot-script route.
        mkdir -p "$d/templates/ipxe"
        cp "$BENCH_HTTP_ROOT/boot.ipxe" "$d/templates/ipxe/chain.ipxe"
        ;;
    *) echo "unknown BENCH_ROLE $BENCH_ROLE" >&2; exit 1 ;;
esac
root=${BENCH_ROOT:-$d}

cat > "$d/bootherd.toml" <<CONF
[server]
interface = "$BENCH_IFACE"
address = "$BENCH_SERVER_IP"
http_port = ${BENCH_HTTP_PORT:-80}
data_dir = "$d"

[dhcp]
mode = "$dhcp_mode"
subnet = "$BENCH_DHCP_SUBNET"
gateway = "$BENCH_DHCP_ROUTER"
pool = "$BENCH_DHCP_POOL_START-$BENCH_DHCP_POOL_END"
lease_time = "2h"

[tftp]
enabled = $tftp_enabled
port = ${BENCH_TFTP_PORT:-69}
root = "$root"

[cluster]
name = "bench"
kubernetes_version = "1.36"
endpoint = "10.77.0.100:6443"
load_balancer = "stacked"

[[machine]]
mac = "52:54:00:00:00:01"
hostname = "cp1"
role = "control-plane"
ip = "10.77.0.11"
CONF

if [ "$BENCH_ROLE" != dhcp ]; then
    exec "$BOOTHERD_BIN" serve --config "$d/bootherd.toml"
fi

# DHCP: the harness counts leases in a text file, bootherd keeps them in
# SQLite. Export them (dotted quads) after the server has stopped, so the
# count is what bootherd actually committed.
export_leases() {
    sqlite3 "$d/state.db" "SELECT (ip>>24)||'.'||((ip>>16)&255)||'.'||((ip>>8)&255)||'.'||(ip&255) FROM leases" \
        > "$BENCH_DHCP_LEASE_FILE" 2>/dev/null || true
}
"$BOOTHERD_BIN" serve --config "$d/bootherd.toml" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true; wait "$pid" || true; export_leases; exit 0' TERM INT
wait "$pid" || true
export_leases
