#!/usr/bin/env bash
# The QEMU lab: a private provisioning network in a network namespace and
# virtual machines that PXE-boot on it. Used by tests/e2e_qemu.rs and
# examples/demo.sh. Needs root; no KVM (TCG).
#
#   lab.sh kernel [ROOT]               print the stand-in kernel (Debian's vmlinuz;
#                                      ROOT: a foreign tree as arm64-kit makes)
#   lab.sh arm64-kit DIR               the arm64 boot files, from the Debian arm64
#                                      packages tests/install-deps.sh downloads:
#                                      DIR/grubnetaa64.efi (GRUB network image,
#                                      prefix /grub like Ubuntu's signed one),
#                                      DIR/vmlinuz and DIR/initrd (the stand-in),
#                                      DIR/local-disk.img (an installed arm64
#                                      disk: its EFI boot loader prints
#                                      "BOOTHERD-LOCALDISK: …" and powers off)
#   lab.sh net-up NS CIDR [BRIDGE]     namespace NS (made if missing) with bridge
#                                      BRIDGE (default bh0) holding CIDR, and tap0 on it
#   lab.sh net-down NS                 stop what runs in NS and delete it
#   lab.sh local-disk IMG              a 1 MiB disk whose boot sector prints
#                                      "BOOTHERD-LOCALDISK: …" and powers the VM off
#   lab.sh boot NS --mac MAC --log FILE [--firmware bios|uefi|uefi-http|aavmf] [--timeout SECS]
#                  [--disk IMG [--disk-if ide|virtio|nvme|sd]] [--until REGEX]
#                  [--kernel K --initrd I --append ARGS]
#       runs one VM inside NS on tap0, serial console to FILE, until it powers
#       off, a serial line matches REGEX (grep -E; the VM is then stopped), or
#       SECS (default 180) pass. uefi-http is OVMF with its PXE boot options
#       switched off, so it boots by UEFI HTTP boot. `aavmf` is an arm64
#       machine (qemu-system-aarch64 -M virt) with AAVMF, the arm64 UEFI.
#       With --kernel it boots that kernel directly (no PXE), to test the
#       stand-in without bootherd.
#       Exit status: 0 when the VM powered itself off or REGEX matched, 124 on timeout.
#
# Nothing leaves the namespace: the bridge has no uplink and no route out.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$here/common.sh"

OVMF_CODE=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
OVMF_VARS=${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}
AAVMF_CODE=${AAVMF_CODE:-/usr/share/AAVMF/AAVMF_CODE.fd}
AAVMF_VARS=${AAVMF_VARS:-/usr/share/AAVMF/AAVMF_VARS.fd}
# Where tests/install-deps.sh downloads the arm64 packages.
ARM64_DEBS=${BOOTHERD_ARM64_DEBS:-/var/cache/bootherd-tests/arm64}
# What the GRUB network image needs built in (bootherd's TFTP serves no GRUB
# modules, only the configs it generates): the network, the installer's
# kernel, and finding and starting the boot loader of an installed disk.
GRUB_NET_MODULES=(normal configfile echo test sleep minicmd net efinet tftp http linux
    search search_fs_file fat part_gpt part_msdos chain)

die() {
    echo "lab.sh: $*" >&2
    exit 1
}

ns_exists() {
    ip netns list | awk '{ print $1 }' | grep -qxF "$1"
}

cmd_net_up() {
    local ns=$1 cidr=$2 br=${3:-bh0}
    ns_exists "$ns" || ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add "$br" type bridge
    # No STP and no forward delay: the VM's DHCP must not wait 30 s for the port.
    ip -n "$ns" link set "$br" type bridge stp_state 0 forward_delay 0
    ip -n "$ns" addr add "$cidr" dev "$br"
    ip -n "$ns" link set "$br" up
    ip netns exec "$ns" ip tuntap add dev tap0 mode tap
    ip -n "$ns" link set tap0 master "$br"
    ip -n "$ns" link set tap0 up
}

cmd_net_down() {
    local ns=$1 pid
    ns_exists "$ns" || return 0
    # Everything in this namespace was started by the lab; stop it by pid.
    for pid in $(ip netns pids "$ns"); do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.5
    for pid in $(ip netns pids "$ns"); do
        kill -KILL "$pid" 2>/dev/null || true
    done
    ip netns del "$ns"
}

# Unpacks the arm64 packages into DIR/root and makes the arm64 boot files.
cmd_arm64_kit() {
    local dir=$1 deb
    local debs=("$ARM64_DEBS"/*_arm64.deb)
    [[ -e "${debs[0]}" ]] || die "no arm64 packages in $ARM64_DEBS: run tests/install-deps.sh"
    command -v grub-mkimage >/dev/null || die "grub-mkimage not found (apt-get install grub-common)"
    rm -rf "$dir/root"
    mkdir -p "$dir/root"
    for deb in "${debs[@]}"; do
        dpkg-deb -x "$deb" "$dir/root"
    done
    grub-mkimage -O arm64-efi -d "$dir/root/usr/lib/grub/arm64-efi" -p /grub \
        -o "$dir/grubnetaa64.efi" "${GRUB_NET_MODULES[@]}"
    cp "$(lab_kernel "$dir/root")" "$dir/vmlinuz"
    "$here/make-initramfs.sh" "$dir/initrd" "$dir/root"

    # The installed disk: a FAT file system with the removable-media boot
    # loader, a GRUB whose built-in config prints the marker and powers off.
    local cfg=$dir/local-disk.cfg
    printf '%s\n' 'echo BOOTHERD-LOCALDISK: booted the local disk' 'halt' >"$cfg"
    grub-mkimage -O arm64-efi -d "$dir/root/usr/lib/grub/arm64-efi" -p /EFI/BOOT -c "$cfg" \
        -o "$dir/BOOTAA64.EFI" echo halt
    rm -f "$dir/local-disk.img"
    mkfs.vfat -C -n BOOTHERD "$dir/local-disk.img" 16384 >/dev/null
    mmd -i "$dir/local-disk.img" ::/EFI ::/EFI/BOOT
    mcopy -i "$dir/local-disk.img" "$dir/BOOTAA64.EFI" ::/EFI/BOOT/BOOTAA64.EFI
}

# A boot sector in hand-assembled 16-bit code (no assembler needed): write a
# marker to COM1, then exit QEMU through the isa-debug-exit port (status 3).
# It proves that iPXE's `sanboot --drive 0x80` really handed over to the disk.
cmd_local_disk() {
    local img=$1 msg=$'\r\nBOOTHERD-LOCALDISK: booted the local disk\r\n'
    truncate -s 1M "$img"
    {
        # 7c00 cli; cld; xor ax,ax; mov ds,ax; mov si,7c1d; mov dx,3f8
        printf '\xfa\xfc\x31\xc0\x8e\xd8\xbe\x1d\x7c\xba\xf8\x03'
        # 7c0c lodsb; test al,al; jz 7c14; out dx,al; jmp 7c0c
        printf '\xac\x84\xc0\x74\x03\xee\xeb\xf8'
        # 7c14 mov dx,f4; mov al,1; out dx,al; hlt; jmp 7c1a
        printf '\xba\xf4\x00\xb0\x01\xee\xf4\xeb\xfd'
        # 7c1d the message, NUL-terminated
        printf '%s\0' "$msg"
    } | dd of="$img" conv=notrunc status=none
    printf '\x55\xaa' | dd of="$img" bs=1 seek=510 conv=notrunc status=none
}

cmd_boot() {
    local ns="" mac="" log="" firmware=bios secs=180 disk="" disk_if=ide kernel="" initrd="" append="" until=""
    ns=$1
    shift
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --mac) mac=$2 ;;
            --log) log=$2 ;;
            --firmware) firmware=$2 ;;
            --timeout) secs=$2 ;;
            --disk) disk=$2 ;;
            --disk-if) disk_if=$2 ;;
            --until) until=$2 ;;
            --kernel) kernel=$2 ;;
            --initrd) initrd=$2 ;;
            --append) append=$2 ;;
            *) die "boot: unknown option $1" ;;
        esac
        shift 2
    done
    [[ -n "$mac" && -n "$log" ]] || die "boot: --mac and --log are required"

    local qemu=qemu-system-x86_64
    local args=(-accel tcg -m 1024 -nographic -no-reboot -monitor none
        -serial "file:$log"
        -netdev "tap,id=n0,ifname=tap0,script=no,downscript=no")
    local vars=""
    if [[ "$firmware" != aavmf ]]; then
        # Lets the local-disk boot sector end the VM (see cmd_local_disk).
        args+=(-device "isa-debug-exit,iobase=0xf4,iosize=0x04")
    fi
    case "$firmware" in
        bios)
            # SeaBIOS runs the iPXE ROM of the virtio NIC (ipxe-qemu).
            args+=(-device "virtio-net-pci,netdev=n0,mac=$mac")
            ;;
        uefi | uefi-http)
            [[ -r "$OVMF_CODE" && -r "$OVMF_VARS" ]] || die "OVMF not found (apt-get install ovmf)"
            if [[ "$firmware" == uefi-http ]]; then
                # OVMF reads these from fw_cfg (OvmfPkg PxeBcPcdLib): with
                # PXE off and no IPv6, the NIC's only boot option is HTTPv4.
                args+=(-fw_cfg "name=opt/org.tianocore/IPv4PXESupport,string=n"
                    -fw_cfg "name=opt/org.tianocore/IPv6PXESupport,string=n"
                    -fw_cfg "name=opt/org.tianocore/IPv6Support,string=n")
            fi
            vars=$(mktemp --suffix=.ovmf-vars.fd)
            cp "$OVMF_VARS" "$vars"
            # romfile= empty: no iPXE option ROM, so OVMF's own UEFI PXE runs.
            args+=(-drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE"
                -drive "if=pflash,format=raw,file=$vars"
                -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=")
            ;;
        aavmf)
            [[ -r "$AAVMF_CODE" && -r "$AAVMF_VARS" ]] || die "AAVMF not found (apt-get install qemu-efi-aarch64)"
            qemu="qemu-system-aarch64"
            vars=$(mktemp --suffix=.aavmf-vars.fd)
            cp "$AAVMF_VARS" "$vars"
            # cortex-a57 rather than `max`: under TCG, max's pointer
            # authentication makes every function call expensive.
            args+=(-M virt -cpu cortex-a57
                -drive "if=pflash,format=raw,readonly=on,file=$AAVMF_CODE"
                -drive "if=pflash,format=raw,file=$vars"
                -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=0")
            ;;
        *) die "boot: --firmware must be bios, uefi, uefi-http or aavmf" ;;
    esac
    if [[ -n "$disk" && "$firmware" == aavmf ]]; then
        # Network first, as on a machine bootherd provisions.
        args+=(-drive "if=none,id=d0,format=raw,file=$disk"
            -device "virtio-blk-pci,drive=d0,bootindex=1")
    elif [[ -n "$disk" ]]; then
        case "$disk_if" in
            nvme)
                args+=(-drive "file=$disk,format=raw,if=none,id=disk0"
                    -device "nvme,serial=bootherd0,drive=disk0")
                ;;
            sd)
                # An SD card behind a PCI SDHCI controller (its size must be a power of 2).
                args+=(-device sdhci-pci -drive "file=$disk,format=raw,if=none,id=disk0"
                    -device "sd-card,drive=disk0")
                ;;
            *) args+=(-drive "file=$disk,format=raw,if=$disk_if") ;;
        esac
    fi
    if [[ -n "$kernel" ]]; then
        args+=(-kernel "$kernel" -initrd "$initrd" -append "$append")
    else
        args+=(-boot n)
    fi

    : >"$log"
    local qpid="" rc=0
    # Runs on every exit of this script, including SIGTERM from a test timeout:
    # stop the VM we started (by pid) and drop its private VARS copy.
    # shellcheck disable=SC2064 # expand now: these locals are gone at EXIT
    trap "[[ -z \"\${qpid:-}\" ]] || kill -TERM \"\$qpid\" 2>/dev/null || true; rm -f '$vars'" EXIT
    trap 'exit 143' TERM INT HUP
    timeout -k 5 "$secs" ip netns exec "$ns" "$qemu" "${args[@]}" </dev/null &
    qpid=$!
    if [[ -n "$until" ]]; then
        # A firmware that does not power off (UEFI after iPXE's `exit` goes on
        # to its next boot option) is stopped once it showed what we wait for.
        while kill -0 "$qpid" 2>/dev/null; do
            if tr -d '\r' <"$log" | grep -aqE "$until"; then
                kill -TERM "$qpid" 2>/dev/null || true
                wait "$qpid" || true
                qpid=""
                return 0
            fi
            sleep 0.5
        done
    fi
    wait "$qpid" || rc=$?
    qpid=""
    case "$rc" in
        0) return 0 ;;
        # isa-debug-exit with value 1: the local-disk boot sector powered off.
        3) return 0 ;;
        124) echo "lab.sh: VM $mac still running after ${secs}s; stopped" >&2; return 124 ;;
        *) echo "lab.sh: qemu exited with status $rc" >&2; return "$rc" ;;
    esac
}

[[ $# -ge 1 ]] || die "usage: see the header of $0"
sub=$1
shift
case "$sub" in
    kernel) lab_kernel "${1:-}" ;;
    arm64-kit) [[ $# -eq 1 ]] || die "arm64-kit DIR"; cmd_arm64_kit "$1" ;;
    net-up) [[ $# -ge 2 ]] || die "net-up NS CIDR [BRIDGE]"; cmd_net_up "$@" ;;
    net-down) [[ $# -eq 1 ]] || die "net-down NS"; cmd_net_down "$1" ;;
    local-disk) [[ $# -eq 1 ]] || die "local-disk IMG"; cmd_local_disk "$1" ;;
    boot) [[ $# -ge 1 ]] || die "boot NS --mac MAC --log FILE …"; cmd_boot "$@" ;;
    *) die "unknown command $sub" ;;
esac
