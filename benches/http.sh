#!/usr/bin/env bash
# HTTP benchmark: bootherd beside nginx in the same run (256 MiB single and
# 32 concurrent downloads, wrk on the boot script), through the shared
# harness ../shared/bench/http.sh (BENCH_DIR overrides where it is).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$here/../shared/bench}
[ -x "$BENCH_DIR/http.sh" ] || { echo "no harness at $BENCH_DIR (set BENCH_DIR)" >&2; exit 1; }
echo "building bootherd (release)" >&2
cargo build --release --manifest-path "$here/Cargo.toml" >&2
export BOOTHERD_BIN="$here/target/release/bootherd"
# Per-request log lines off, as the harness's nginx runs with access_log off.
export RUST_LOG=${RUST_LOG:-warn}
export OURS_NAME=bootherd OURS_HTTP_CMD="exec bash $here/benches/bench-server.sh"
exec "$BENCH_DIR/http.sh" "$@"
