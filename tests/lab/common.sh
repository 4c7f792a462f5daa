# shellcheck shell=bash
# Shared by the lab scripts (sourced, not run): where the stand-in kernel lives.

# The Debian kernel that stands in for the Ubuntu installer's. The host's own
# `uname -r` is irrelevant (CI runners boot other kernels), so pick the newest
# ROOT/boot/vmlinuz-* whose modules are installed. ROOT (optional) is a Debian
# tree of another architecture (`lab.sh arm64-kit`); without it, the host's
# files, where BOOTHERD_LAB_KVER overrides.
lab_kernel_version() {
    local root=${1:-}
    if [[ -z "$root" && -n "${BOOTHERD_LAB_KVER:-}" ]]; then
        echo "$BOOTHERD_LAB_KVER"
        return
    fi
    local k v best=""
    while IFS= read -r k; do
        v=${k#"$root"/boot/vmlinuz-}
        if [[ -d "$root/lib/modules/$v/kernel" ]]; then best=$v; fi
    done < <(compgen -G "$root/boot/vmlinuz-*" | sort -V)
    if [[ -z "$best" ]]; then
        echo "no $root/boot/vmlinuz-* with $root/lib/modules/<version>: install linux-image-amd64 (arm64: tests/install-deps.sh)" >&2
        return 1
    fi
    echo "$best"
}

lab_kernel() {
    local root=${1:-} v
    v=$(lab_kernel_version "$root") || return 1
    echo "$root/boot/vmlinuz-$v"
}
