#!/usr/bin/env bash
# The cluster lab: the example cluster's machines as systemd-nspawn
# containers that boot real systemd and run their real first boot (cloud-init
# NoCloud, apt from the lab's own mirror, containerd/runc, haproxy,
# keepalived, etcd) on a private provisioning network in a network namespace.
# Needs root; no KVM. Everything it starts is recorded under $LAB_STATE and
# stopped by `down`.
#
#   lab.sh root [CACHE_DIR]        build (once; cached) the installed-system root,
#                                  CACHE_DIR/root, and print its path. A Debian
#                                  bookworm minbase with systemd, cloud-init, apt,
#                                  curl, gpg …, but none of the packages the role
#                                  scripts install; apt points at the lab mirror
#                                  http://$LAB_MIRROR_ADDR/debian, trusted through
#                                  the lab archive key. Rebuilt when its inputs
#                                  (package list, key, mirror address) change.
#   lab.sh repo OUT_DIR STANDIN_DEBS_DIR K8S_MINOR
#                                  build the lab mirror in OUT_DIR (replaced):
#                                    OUT_DIR/debian/        signed archive: containerd,
#                                                           runc, haproxy, keepalived, etcd-server …
#                                                           and their dependencies the root lacks
#                                    OUT_DIR/kubernetes/core:/stable:/vK8S_MINOR/deb/
#                                                           pkgs.k8s.io-shaped flat repo with the
#                                                           stand-in debs and Release.key
#                                    OUT_DIR/files/         other files (a tigera-operator.yaml
#                                                           stand-in under files/raw.githubusercontent.com/)
#                                    OUT_DIR/tls/           the mirror's certificate (lab CA)
#                                  Downloaded .debs are cached: a second run needs no network.
#   lab.sh net-up NS CIDR          namespace NS with bridge $LAB_BRIDGE (bh0) holding CIDR
#                                  (e.g. 10.0.0.1/24); no uplink, multicast (VRRP) flows
#   lab.sh net-down NS             stop the nodes and mirror in NS, delete NS
#   lab.sh mirror-start NS ADDR DIR
#                                  serve DIR over HTTP on ADDR (IP or IP:PORT, default
#                                  port 80; the IP is added to the bridge as /32) and,
#                                  with DIR/tls, HTTPS on 443 for pkgs.k8s.io and
#                                  raw.githubusercontent.com (see node-start)
#   lab.sh mirror-stop NS          stop it and remove its address
#   lab.sh mirror-block NS [reject|drop]
#                                  make the mirror unreachable (nftables in NS; reject:
#                                  connections refused at once, drop: they time out)
#   lab.sh mirror-unblock NS       reachable again
#   lab.sh node-start NS NAME MAC IP/PREFIX GATEWAY DNS SEED_DIR [DISK_DIR]
#                                  boot node NAME: its disk DISK_DIR (default
#                                  $LAB_DISKS/NAME) is an overlay on the root; an
#                                  empty or missing DISK_DIR is a fresh install, an
#                                  existing one boots again as it was (a reboot;
#                                  `node-wipe` first for a reimage). NIC eth0 with MAC
#                                  on the bridge, IP/GATEWAY/DNS as a systemd-networkd
#                                  file (what netplan renders), hostname NAME, the
#                                  NoCloud seed (SEED_DIR/user-data, meta-data, and
#                                  network-config/vendor-data if present). Console in
#                                  $LAB_STATE/NAME/console.log. Returns once the node's
#                                  systemd runs (not when it finished booting).
#   lab.sh node-exec NAME CMD…     run CMD inside the running node (its namespaces,
#                                  PATH of the node); exit status of CMD
#   lab.sh node-wait NAME [SECS]   wait until cloud-init finished in NAME (default 600 s);
#                                  prints its result; 1 if it failed, 124 on timeout
#   lab.sh node-stop NAME          clean power-off (systemd shuts down), then wait
#   lab.sh node-kill NAME          hard power cut: the link drops and every process dies at once
#   lab.sh node-wipe NAME|DISK_DIR delete a stopped node's disk (the next node-start reimages)
#   lab.sh node-list               running nodes: NAME NS PID IP MAC DISK
#   lab.sh down                    stop every node and mirror, delete the namespaces
#                                  and the disks the lab made
#
# Environment: LAB_CACHE (/var/cache/bootherd-tests/cluster-lab: debs, the lab
# keys, the default root), LAB_ROOT (the root node-start boots; default
# LAB_CACHE/root), LAB_STATE (/run/bootherd-cluster-lab), LAB_DISKS
# (/var/tmp/bootherd-cluster-lab), LAB_MIRROR_ADDR (10.0.0.5: baked into the
# root's apt sources and the nodes' /etc/hosts), LAB_BRIDGE (bh0).
#
# Nothing leaves the namespaces: the bridge has no uplink and no route out.
# Only `root` and `repo` use the network, to fetch Debian packages.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

LAB_CACHE=${LAB_CACHE:-/var/cache/bootherd-tests/cluster-lab}
LAB_ROOT=${LAB_ROOT:-$LAB_CACHE/root}
LAB_STATE=${LAB_STATE:-/run/bootherd-cluster-lab}
LAB_DISKS=${LAB_DISKS:-/var/tmp/bootherd-cluster-lab}
LAB_MIRROR_ADDR=${LAB_MIRROR_ADDR:-10.0.0.5}
LAB_BRIDGE=${LAB_BRIDGE:-bh0}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
PYTHON=/usr/bin/python3

# What an installed Ubuntu server has before its first boot (Debian names).
# Not here, on purpose: what the role scripts install from the lab mirror.
ROOT_PACKAGES=(
    systemd systemd-sysv dbus libpam-systemd iproute2 iputils-ping netbase
    curl ca-certificates openssl gpg
    cloud-init python3 python3-yaml
    python3-cffi-backend  # debootstrap cannot resolve the virtual package python3-cryptography needs
    kmod procps sudo less
)
# The role scripts' apt-get installs, and what the stand-ins depend on.
REPO_PACKAGES=(
    containerd runc haproxy keepalived conntrack socat ebtables ethtool iptables
    etcd-server etcd-client
)
# Names the nodes resolve to the mirror (via /etc/hosts), served over HTTPS
# with a certificate of the lab CA that the root trusts.
MIRROR_NAMES=(pkgs.k8s.io raw.githubusercontent.com)
CALICO_VERSION=${CALICO_VERSION:-v3.28.2}

die() {
    echo "lab.sh: $*" >&2
    exit 1
}

note() {
    echo "lab.sh: $*" >&2
}

need_root() {
    [[ "$(id -u)" == 0 ]] || die "run as root (sudo $0 …)"
}

need() {
    local cmd=$1 pkg=$2
    command -v "$cmd" >/dev/null || die "$cmd not found: apt-get install $pkg (tests/install-deps.sh)"
}

ns_exists() {
    ip netns list | awk '{ print $1 }' | grep -qxF "$1"
}

need_ns() {
    ns_exists "$1" || die "no network namespace $1: run \`lab.sh net-up $1 CIDR\` first"
}

# --- the lab keys ---------------------------------------------------------

GNUPGHOME_LAB=$LAB_CACHE/gnupg
KEY_UID="bootherd cluster lab archive <lab@bootherd.invalid>"

lab_gpg() {
    GNUPGHOME=$GNUPGHOME_LAB gpg --batch --quiet --no-tty "$@"
}

# The lab's archive signing key (made once, no passphrase).
ensure_key() {
    need gpg gnupg
    if [[ ! -s "$GNUPGHOME_LAB/key.fpr" ]]; then
        rm -rf "$GNUPGHOME_LAB"
        install -d -m 0700 "$GNUPGHOME_LAB"
        lab_gpg --passphrase '' --quick-gen-key "$KEY_UID" rsa3072 sign never
        lab_gpg --list-keys --with-colons | awk -F: '$1 == "fpr" { print $10; exit }' >"$GNUPGHOME_LAB/key.fpr.tmp"
        mv "$GNUPGHOME_LAB/key.fpr.tmp" "$GNUPGHOME_LAB/key.fpr"
    fi
    KEY_FPR=$(cat "$GNUPGHOME_LAB/key.fpr")
}

# The lab CA, and the mirror's certificate for its address and MIRROR_NAMES.
CA_DIR=$LAB_CACHE/ca
ensure_ca() {
    need openssl openssl
    if [[ ! -s "$CA_DIR/ca.crt" ]]; then
        rm -rf "$CA_DIR"
        install -d -m 0700 "$CA_DIR"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=bootherd cluster lab CA" \
            -keyout "$CA_DIR/ca.key" -out "$CA_DIR/ca.crt.tmp" 2>/dev/null
        mv "$CA_DIR/ca.crt.tmp" "$CA_DIR/ca.crt"
    fi
}

mirror_cert() {
    local out=$1 san="IP:$LAB_MIRROR_ADDR" n
    for n in "${MIRROR_NAMES[@]}"; do
        san+=",DNS:$n"
    done
    ensure_ca
    install -d -m 0755 "$out"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=${MIRROR_NAMES[0]}" \
        -keyout "$out/mirror.key" -out "$out/mirror.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" >"$out/ext.cnf"
    openssl x509 -req -in "$out/mirror.csr" -CA "$CA_DIR/ca.crt" -CAkey "$CA_DIR/ca.key" \
        -CAcreateserial -days 825 -extfile "$out/ext.cnf" -out "$out/mirror.crt" 2>/dev/null
    rm -f "$out/mirror.csr" "$out/ext.cnf"
}

# --- root -----------------------------------------------------------------

cmd_root() {
    local cache=${1:-$LAB_CACHE}
    need_root
    need debootstrap debootstrap
    ensure_key
    ensure_ca
    local root=$cache/root
    # Everything the root is made of; a change rebuilds it.
    local stamp
    stamp=$(printf '%s\n' "root-v1" "$SUITE" "$DEBIAN_MIRROR" "$LAB_MIRROR_ADDR" "$KEY_FPR" \
        "$(sha256sum <"$CA_DIR/ca.crt")" "${ROOT_PACKAGES[@]}" | sha256sum | cut -d' ' -f1)
    if [[ -f "$root/.bootherd-lab-root" && "$(cat "$root/.bootherd-lab-root")" == "$stamp" ]]; then
        echo "$root"
        return 0
    fi
    local partial=$root.partial
    rm -rf "$partial"
    install -d "$cache" "$LAB_CACHE/debootstrap"
    note "building the node root in $root (debootstrap, a few minutes)"
    local include
    include=$(
        IFS=,
        echo "${ROOT_PACKAGES[*]}"
    )
    if ! debootstrap --variant=minbase --merged-usr --include="$include" \
        --cache-dir="$LAB_CACHE/debootstrap" "$SUITE" "$partial" "$DEBIAN_MIRROR" \
        >"$cache/debootstrap.log" 2>&1; then
        tail -n 30 "$cache/debootstrap.log" >&2
        die "debootstrap failed (log: $cache/debootstrap.log); is $DEBIAN_MIRROR reachable?"
    fi
    configure_root "$partial"
    echo "$stamp" >"$partial/.bootherd-lab-root"
    rm -rf "$root.old"
    if [[ -e "$root" ]]; then
        mv "$root" "$root.old"
    fi
    mv "$partial" "$root"
    rm -rf "$root.old"
    echo "$root"
}

# mask ROOT UNIT…: what must not run in the lab.
mask() {
    local r=$1 u
    shift
    for u in "$@"; do
        ln -sfn /dev/null "$r/etc/systemd/system/$u"
    done
}

configure_root() {
    local r=$1
    # apt: only the lab mirror, trusted through the lab archive key (the
    # stand-in for Ubuntu's archive keyring).
    printf 'deb http://%s/debian %s main\n' "$LAB_MIRROR_ADDR" "$SUITE" >"$r/etc/apt/sources.list"
    rm -f "$r"/etc/apt/sources.list.d/*
    lab_gpg --export "$KEY_FPR" >"$r/etc/apt/trusted.gpg.d/bootherd-lab-archive.gpg"
    chmod 0644 "$r/etc/apt/trusted.gpg.d/bootherd-lab-archive.gpg"
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin
    find "$r/var/cache/apt/archives" -name '*.deb' -delete
    # An apt that is quick to give up, so a test of a mirror outage is quick.
    printf '%s\n' 'Acquire::http::Timeout "20";' 'Acquire::Retries "0";' \
        >"$r/etc/apt/apt.conf.d/90bootherd-lab"
    # The lab CA, as public CAs are trusted on a real system (HTTPS mirror).
    install -D -m 0644 "$CA_DIR/ca.crt" "$r/usr/local/share/ca-certificates/bootherd-lab-ca.crt"
    chroot "$r" update-ca-certificates >/dev/null 2>&1

    # cloud-init: NoCloud only, the network left to the installed system's
    # own config (as Ubuntu's installer does), the apt sources kept (as
    # curtin's curtin-preserve-sources.cfg does).
    cat >"$r/etc/cloud/cloud.cfg.d/90-bootherd-lab.cfg" <<'CFG'
datasource_list: [ NoCloud, None ]
network: {config: disabled}
apt:
  preserve_sources_list: true
CFG
    # Modules that only touch hardware, disks or consoles a container lacks.
    cat >"$r/etc/cloud/cloud.cfg.d/91-bootherd-lab-container.cfg" <<'CFG'
growpart: {mode: off}
resize_rootfs: false
CFG

    # systemd: networkd (the static address), no timers, no consoles.
    ln -sfn /lib/systemd/system/systemd-networkd.service \
        "$r/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
    install -d "$r/etc/systemd/system/sockets.target.wants" "$r/etc/systemd/system/network-online.target.wants"
    ln -sfn /lib/systemd/system/systemd-networkd.socket \
        "$r/etc/systemd/system/sockets.target.wants/systemd-networkd.socket"
    ln -sfn /lib/systemd/system/systemd-networkd-wait-online.service \
        "$r/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service"
    mask "$r" apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
        fstrim.timer e2scrub_all.timer e2scrub_reap.service unattended-upgrades.service \
        console-getty.service getty@.service serial-getty@.service container-getty@.service \
        systemd-timesyncd.service man-db.timer dpkg-db-backup.timer
    # Sysctls a container cannot set (its /proc/sys is read-only but for
    # net.*) would make `sysctl --system` fail in the role scripts.
    install -d "$r/etc/sysctl.d"
    local f
    for f in "$r"/usr/lib/sysctl.d/*.conf; do
        [[ -e "$f" ]] || continue
        grep -Ev '^[[:space:]]*-?(kernel|fs|vm)\.' "$f" >"$r/etc/sysctl.d/$(basename "$f")" || true
    done

    # A machine of its own on first boot: identity comes from node-start.
    : >"$r/etc/machine-id"
    rm -f "$r/var/lib/dbus/machine-id" "$r/etc/hostname"
    echo 'LANG=C.UTF-8' >"$r/etc/default/locale"
    # Built-in kernel modules (no /lib/modules on the host for the running
    # kernel) are made known to the node's modprobe at node-start.
    rm -rf "$r"/var/log/*.log "$r/var/log/apt" "$r"/tmp/* 2>/dev/null || true
    install -d -m 0755 "$r/var/log/apt"
}

case "${1:-}" in
    root) shift; cmd_root "$@" ;;
    *) die "unknown command ${1:-} (usage: see the header of $0)" ;;
esac
