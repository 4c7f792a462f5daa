#!/bin/sh
# shellcheck shell=dash
# /init for the Pi installer test (tests/pi_installer.rs): a stand-in for the
# part of initramfs-tools' /init that Ubuntu's raspi initrd runs before the
# bootherd hook. Like the real one it mounts the kernel file systems, loads
# the modules, reads `boot=` from the kernel command line, sources
# /scripts/${BOOT} and calls mount_top, mount_premount and mountroot; it
# provides the /scripts/functions helpers the hook uses (configure_networking
# by DHCP, panic, log_*_msg). The hook itself comes unchanged from the archive
# bootherd appends to this initrd, unpacked by the kernel.
#
# Outcomes are console lines starting with "BOOTHERD-PI-STANDIN:". PID 1 must
# never exit, so every path ends in reboot or poweroff (QEMU runs -no-reboot).

/bin/busybox --install -s /bin
export PATH=/bin

say() { echo "BOOTHERD-PI-STANDIN: $*"; }

mkdir -p /proc /sys /dev /run /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run

while read -r ko; do
    [ -n "$ko" ] || continue
    insmod "$ko" || say "insmod $ko failed"
done </etc/standin-modules

# --- what /scripts/functions provides ---
log_success_msg() { echo "Success: $*"; }
log_failure_msg() { echo "Failure: $*"; }
log_warning_msg() { echo "Warning: $*"; }
log_begin_msg() { echo "Begin: $*"; }
log_end_msg() { echo "Done."; }

panic() {
    say "PANIC $*"
    sync
    poweroff -f
    while :; do sleep 3600; done
}

configure_networking() {
    ifconfig eth0 up
    udhcpc -i eth0 -n -q -t 10 -T 2 -s /etc/udhcpc.script >/dev/null 2>&1 ||
        panic "no DHCP lease"
    say "network up: $(cat /tmp/ip)"
}

BOOT=local
# shellcheck disable=SC2013 # the command line is one line of words
for x in $(cat /proc/cmdline); do
    case "$x" in
        boot=*) BOOT=${x#boot=} ;;
    esac
done
[ -f "/scripts/$BOOT" ] || panic "/scripts/$BOOT is not in the initramfs"
say "sourcing /scripts/$BOOT"
# shellcheck disable=SC1090 # the boot script the command line names
. "/scripts/$BOOT"
mount_top
mount_premount
mountroot
panic "mountroot returned"
