# shellcheck shell=bash
# Shared by the lab scripts (sourced, not run): where the stand-in kernel lives.

# The Debian kernel that stands in for the Ubuntu installer's. The host's own
# `uname -r` is irrelevant (CI runners boot other kernels), so pick the newest
# /boot/vmlinuz-* whose modules are installed; BOOTHERD_LAB_KVER overrides.
lab_kernel_version() {
    if [[ -n "${BOOTHERD_LAB_KVER:-}" ]]; then
        echo "$BOOTHERD_LAB_KVER"
        return
    fi
    local k v best=""
    while IFS= read -r k; do
        v=${k#/boot/vmlinuz-}
        if [[ -d "/lib/modules/$v/kernel" ]]; then best=$v; fi
    done < <(compgen -G '/boot/vmlinuz-*' | sort -V)
    if [[ -z "$best" ]]; then
        echo "no /boot/vmlinuz-* with /lib/modules/<version>: install linux-image-amd64" >&2
        return 1
    fi
    echo "$best"
}

lab_kernel() {
    local v
    v=$(lab_kernel_version) || return 1
    echo "/boot/vmlinuz-$v"
}
