#!/usr/bin/env bash
# Builds the installer stand-in: a busybox-static initramfs whose /init
# (standin-init.sh) fetches the NoCloud seed from bootherd, checks it, posts the
# install-finished callback and powers off. It boots with the Debian kernel
# (linux-image-amd64) in place of Ubuntu's installer kernel.
#
#   tests/lab/make-initramfs.sh OUT.cpio.gz [ROOT]
#
# Without ROOT it is for the host's architecture: the host's static busybox and
# the modules of the kernel tests/lab/common.sh picks (BOOTHERD_LAB_KVER
# overrides); the kernel to boot with it is printed by `tests/lab/lab.sh kernel`.
# With ROOT, a Debian tree of another architecture unpacked from its packages
# (`lab.sh arm64-kit`): its busybox-static and its kernel's modules.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$here/common.sh"

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 OUT.cpio.gz [ROOT]" >&2
    exit 2
fi
out=$1
foreign=${2:-}

if [[ -n "$foreign" ]]; then
    # busybox-static of that architecture (ldd cannot judge a foreign binary).
    busybox=$foreign/bin/busybox
    [[ -f "$busybox" ]] || {
        echo "no $busybox: unpack busybox-static of that architecture into $foreign" >&2
        exit 1
    }
else
    # A dynamic busybox would need its libc in the initramfs too. ldd fails on a
    # static binary (and `file` is not on every fresh machine).
    is_static() { [[ -x "$1" ]] && ! ldd "$1" >/dev/null 2>&1; }
    busybox=$(command -v busybox || true)
    if [[ -z "$busybox" ]] || ! is_static "$busybox"; then
        busybox=/bin/busybox
        is_static "$busybox" || {
            echo "need a static busybox (apt-get install busybox-static)" >&2
            exit 1
        }
    fi
fi
for tool in cpio gzip; do
    command -v "$tool" >/dev/null || { echo "need $tool" >&2; exit 1; }
done

kver=$(lab_kernel_version "$foreign")
moddir=$foreign/lib/modules/$kver

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,etc,proc,sys,tmp,lib/modules}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$here/standin-init.sh" "$root/init"

# The virtio-net stack in dependency order (Debian's kernel has them as modules). A module
# built into this kernel needs no insmod; one that is neither is an error.
: >"$root/etc/standin-modules"
for mod in failover net_failover virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_net; do
    ko=$(find "$moddir/kernel" -name "$mod.ko" -o -name "$mod.ko.xz" -o -name "$mod.ko.zst" -o -name "$mod.ko.gz" | head -n 1)
    if [[ -z "$ko" ]]; then
        if grep -q "/$mod\.ko$" "$moddir/modules.builtin" 2>/dev/null; then
            continue
        fi
        echo "module $mod is neither in $moddir nor built into $kver" >&2
        exit 1
    fi
    # busybox insmod loads plain .ko only: decompress here, once.
    case "$ko" in
        *.xz) xz -dc "$ko" >"$root/lib/modules/$mod.ko" ;;
        *.zst) zstd -qdc "$ko" >"$root/lib/modules/$mod.ko" ;;
        *.gz) gzip -dc "$ko" >"$root/lib/modules/$mod.ko" ;;
        *) cp "$ko" "$root/lib/modules/$mod.ko" ;;
    esac
    echo "/lib/modules/$mod.ko" >>"$root/etc/standin-modules"
done

# udhcpc calls this with the lease in the environment; it records the address
# so /init can print it.
cat >"$root/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
    bound|renew)
        ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up
        if [ -n "${router:-}" ]; then
            for r in $router; do route add default gw "$r" dev "$interface"; break; done
        fi
        echo "$ip" >/tmp/ip
        ;;
    deconfig)
        ifconfig "$interface" 0.0.0.0
        ;;
esac
exit 0
EOF
chmod 0755 "$root/etc/udhcpc.script"

tmp_out="$out.tmp.$$"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -9 >"$tmp_out"
mv "$tmp_out" "$out"
echo "built $out (kernel $kver, $(wc -c <"$out") bytes)" >&2
