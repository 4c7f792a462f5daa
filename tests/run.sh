#!/usr/bin/env bash
# Runs every bootherd check and test: formatting, lints, shellcheck, unit and
# integration tests (real DHCP/TFTP clients and QEMU PXE boots inside network
# namespaces). Needs root; installs missing test dependencies first.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "the tests create network namespaces: run as root (sudo $0)" >&2; exit 1; }
bash tests/install-deps.sh

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --all-targets --locked -- -D warnings
echo "== shellcheck" >&2
mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
shellcheck "${scripts[@]}"
echo "== cargo test" >&2
cargo test --locked --all-targets
