#!/usr/bin/env bash
# Installs what bootherd's tests use: the real peers (DHCP and TFTP clients,
# QEMU with SeaBIOS/iPXE/OVMF firmware, a Debian kernel and busybox for the
# installer stand-in) and the validators. Debian 12; run as root. Idempotent.
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }

PKGS=(
    iproute2 procps curl socat python3 cpio sqlite3 ca-certificates
    isc-dhcp-client busybox-static kea-admin           # dhclient, udhcpc, perfdhcp
    tftp-hpa atftp                                      # TFTP clients
    qemu-system-x86 ipxe-qemu ipxe ovmf                 # firmware PXE boots
    linux-image-amd64                                   # the installer stand-in's kernel
    xorriso mtools dosfstools xz-utils fdisk            # test ISOs and Pi-like disk images
    shellcheck
    openssl                                             # validates the PKI and CA hash; first-boot fixtures
    cloud-init python3-jsonschema haproxy keepalived    # validators of the first-boot files
    debootstrap util-linux                              # a Debian root (chroot, unshare) for the role scripts
    etcd-server                                         # a real etcd cluster for the control-plane reimage
    # the status page in a real browser; /metrics checked by real Prometheus parsers
    chromium chromium-driver prometheus python3-prometheus-client
    # proxyDHCP and relays (issue 6): the site's DHCP server beside bootherd,
    # and a real relay agent between a rack network and bootherd
    dnsmasq isc-dhcp-relay
    e2fsprogs initramfs-tools                           # Pi installer test: the image's ext4 `writable`; a real initramfs-tools initrd
    qemu-system-arm qemu-efi-aarch64 grub-common        # arm64 UEFI PXE boot (AAVMF), grub-mkimage
    # the cluster lab (tests/cluster_lab.rs): nodes as systemd-nspawn
    # containers, its signed package mirror, the mirror outage
    systemd-container dpkg-dev apt-utils gnupg nftables kmod
)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The arm64 lab (tests/e2e_arm64.rs, `tests/lab/lab.sh arm64-kit`) unpacks
# Debian's arm64 GRUB modules, kernel and static busybox: downloaded through
# apt (the arm64 architecture added for that), not installed on this host.
ARM64_DEBS=${BOOTHERD_ARM64_DEBS:-/var/cache/bootherd-tests/arm64}
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    apt-get update -qq
fi
arm64_kernel=$(apt-cache depends linux-image-arm64:arm64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { sub(/:arm64$/, "", $2); print $2; exit }')
[ -n "$arm64_kernel" ] || { echo "cannot resolve linux-image-arm64:arm64 (apt-get update?)" >&2; exit 1; }
mkdir -p "$ARM64_DEBS"
for p in grub-efi-arm64-bin busybox-static "$arm64_kernel"; do
    if ! compgen -G "$ARM64_DEBS/${p}_*_arm64.deb" >/dev/null; then
        echo "downloading $p:arm64 into $ARM64_DEBS" >&2
        if ! (cd "$ARM64_DEBS" && apt-get download -qq "$p:arm64"); then
            echo "could not download $p:arm64" >&2
            exit 1
        fi
    fi
done

for c in rustfmt clippy; do
    if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1; then
        echo "adding the rust component $c" >&2
        rustup component add "$c"
    fi
done
echo "test dependencies are installed" >&2
