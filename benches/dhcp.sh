#!/usr/bin/env bash
# DHCP benchmark: bootherd beside Kea (memfile) and dnsmasq in the same run,
# perfdhcp DORA at a light and a saturating rate, through the shared harness
# ../shared/bench/dhcp.sh (BENCH_DIR overrides where it is). Run as root;
# run ../shared/bench/setup.sh once first.
#
# bootherd's leases are durable (SQLite, fsynced before each ACK, group
# commit); benches/bench-server.sh exports them after the server stopped so
# the harness's `leases` column counts what bootherd actually committed.
# Logging is at WARN, as the peers are configured (Kea WARN, dnsmasq --quiet-dhcp).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$here/../shared/bench}
[ -x "$BENCH_DIR/dhcp.sh" ] || { echo "no harness at $BENCH_DIR (set BENCH_DIR)" >&2; exit 1; }
echo "building bootherd (release)" >&2
cargo build --release --manifest-path "$here/Cargo.toml" >&2
export BOOTHERD_BIN="$here/target/release/bootherd"
export RUST_LOG=${RUST_LOG:-warn}
export OURS_NAME=bootherd OURS_DHCP_CMD="exec bash $here/benches/bench-server.sh"
exec "$BENCH_DIR/dhcp.sh" "$@"
