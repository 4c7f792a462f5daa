#!/usr/bin/env bash
# bootherd's main job with no hardware: a private provisioning network in a
# network namespace, `bootherd serve` with a one-machine config, and a QEMU
# machine that PXE-boots through it (SeaBIOS → iPXE → bootherd's script →
# kernel + initrd) into an installer stand-in, which fetches its cloud-init
# seed and reports the install finished. Ends with `bootherd machines`.
#
#   sudo examples/demo.sh
#
# Needs root (network namespaces) and Debian/Ubuntu packages it installs when
# missing. Takes a few minutes without KVM. Nothing leaves the namespace, and
# everything it made is removed at the end (BOOTHERD_DEMO_KEEP=1 keeps the
# working directory with the logs).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lab=$repo/tests/lab/lab.sh
mac=52:54:00:aa:00:01

step() { printf '\n==> %s\n' "$*"; }

[[ $(id -u) -eq 0 ]] || { echo "the demo creates a network namespace: run it as root (sudo $0)" >&2; exit 1; }

pkgs=(iproute2 cpio busybox-static qemu-system-x86 ipxe-qemu ipxe linux-image-amd64)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    step "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
step "building bootherd (cargo build --release; the first build takes a few minutes)"
# shellcheck disable=SC2016 # expanded by the inner shell
build='command -v cargo >/dev/null || { echo "cargo not found for $(id -un): install Rust from https://rustup.rs" >&2; exit 1; }
cd "$1" && cargo build --release'
if [[ -n "${SUDO_USER:-}" && "$SUDO_USER" != root ]]; then
    # Under sudo, build as the user who ran it: their Rust toolchain (rustup
    # puts it in their home, not on root's PATH), and a target/ they own.
    sudo -u "$SUDO_USER" -H bash -lc "$build" build "$repo"
else
    bash -c "$build" build "$repo"
fi
bootherd=$repo/target/release/bootherd

work=$(mktemp -d /tmp/bootherd-demo.XXXXXX)
ns=bootherd-demo-$$
serve_pid=""
cleanup() {
    local rc=$?
    # Stop what this script started, by pid; net-down then removes the
    # namespace and anything still running inside it (only ours).
    [[ -z "$serve_pid" ]] || kill "$serve_pid" 2>/dev/null || true
    "$lab" net-down "$ns" || true
    if [[ "${BOOTHERD_DEMO_KEEP:-}" == 1 ]]; then
        echo "logs kept in $work"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "building the installer stand-in (Debian kernel + busybox initramfs)"
"$repo/tests/lab/make-initramfs.sh" "$work/standin.cpio.gz"

step "making the private provisioning network: namespace $ns, bridge bh0 = 10.0.0.2/24, tap0 for the VM"
"$lab" net-up "$ns" 10.0.0.2/24 bh0

step "writing $work/bootherd.toml: one control plane (cp1, $mac → 10.0.0.11), stacked load balancing"
data=$work/data
cat >"$work/bootherd.toml" <<EOF
[server]
interface = "bh0"
address   = "10.0.0.2"
http_port = 8080
data_dir  = "$data"

[dhcp]
mode       = "authoritative"
subnet     = "10.0.0.0/24"
gateway    = "10.0.0.1"
dns        = ["10.0.0.1"]
pool       = "10.0.0.200-10.0.0.250"
lease_time = "1h"

[cluster]
name               = "demo"
kubernetes_version = "1.36"
endpoint           = "10.0.0.100:6443"
# haproxy + keepalived on the control planes themselves: no separate LB machines.
load_balancer      = "stacked"

[[machine]]
mac      = "$mac"
hostname = "cp1"
role     = "control-plane"
ip       = "10.0.0.11"
EOF
"$bootherd" check --config "$work/bootherd.toml"

# Where an operator puts casper/vmlinuz, casper/initrd and the ISO; here the
# stand-ins, and a small file in place of the multi-GB ISO.
images=$data/images/ubuntu-24.04-amd64
mkdir -p "$images"
cp "$("$lab" kernel)" "$images/vmlinuz"
cp "$work/standin.cpio.gz" "$images/initrd"
head -c 1048576 /dev/zero >"$images/live-server.iso"

step "starting bootherd serve in the namespace (log: $work/bootherd.log)"
ip netns exec "$ns" "$bootherd" serve --config "$work/bootherd.toml" >"$work/bootherd.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do
    kill -0 "$serve_pid" 2>/dev/null || { cat "$work/bootherd.log"; echo "bootherd serve exited" >&2; exit 1; }
    if ip netns exec "$ns" "$bootherd" machines --config "$work/bootherd.toml" >/dev/null 2>&1; then break; fi
    sleep 0.2
done
ip netns exec "$ns" "$bootherd" machines --config "$work/bootherd.toml"

step "powering on a QEMU BIOS machine ($mac); without KVM this takes about a minute"
"$lab" local-disk "$work/disk.img"
: >"$work/serial.log"
"$lab" boot "$ns" --mac "$mac" --log "$work/serial.log" --timeout 300 --disk "$work/disk.img" &
vm_pid=$!
# Show the boot's milestones from the serial console as they happen.
shown=0
show_progress() {
    local lines
    lines=$(wc -l <"$work/serial.log")
    if [[ "$lines" -gt "$shown" ]]; then
        sed -n "$((shown + 1)),${lines}p" "$work/serial.log" | tr -d '\r' |
            grep -aE '^(iPXE|net0: [0-9]|Configuring|http://|bootherd:|BOOTHERD-)' | sed 's/^/    vm | /' || true
        shown=$lines
    fi
}
while kill -0 "$vm_pid" 2>/dev/null; do
    show_progress
    sleep 1
done
vm_rc=0
wait "$vm_pid" || vm_rc=$?
show_progress

step "bootherd machines"
ip netns exec "$ns" "$bootherd" machines --config "$work/bootherd.toml"

if [[ $vm_rc -eq 0 ]] && grep -aq 'BOOTHERD-STANDIN: done' "$work/serial.log"; then
    step "done: cp1 PXE-booted from bootherd, fetched its seed and reported the install finished"
else
    echo "the VM did not finish the install (exit $vm_rc); last of bootherd's log:" >&2
    tail -n 30 "$work/bootherd.log" >&2
    exit 1
fi
