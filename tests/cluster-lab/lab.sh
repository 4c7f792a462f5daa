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
#                                  A CACHE_DIR other than $LAB_CACHE: set LAB_ROOT
#                                  to CACHE_DIR/root for repo and node-start.
#   lab.sh repo OUT_DIR STANDIN_DEBS_DIR K8S_MINOR
#                                  build the lab mirror in OUT_DIR (replaced):
#                                    OUT_DIR/debian/        signed archive: containerd,
#                                                           runc, haproxy, keepalived, etcd-server …
#                                                           and their dependencies the root lacks
#                                    OUT_DIR/kubernetes/core:/stable:/vK8S_MINOR/deb/
#                                                           pkgs.k8s.io-shaped flat repo with the
#                                                           stand-in debs and Release.key
#                                    OUT_DIR/files/         other files: a tigera-operator.yaml stand-in
#                                                           under files/raw.githubusercontent.com/…
#                                                           (STANDIN_DEBS_DIR/tigera-operator.yaml if
#                                                           it exists), the same at calico/
#                                                           (README's [mirrors] calico_manifest)
#                                    OUT_DIR/tls/           the mirror's certificate (lab CA)
#                                  Downloaded .debs are cached: a second run needs no network.
#   lab.sh net-up NS CIDR          namespace NS with bridge $LAB_BRIDGE (bh0) holding CIDR
#                                  (e.g. 10.0.0.1/24); no uplink, multicast (VRRP) flows
#   lab.sh net-down NS             stop the nodes and mirror in NS, delete NS
#   lab.sh mirror-start NS ADDR DIR
#                                  serve DIR over HTTP on ADDR (IP or IP:PORT, default
#                                  port 80; the IP is added to the bridge as /32) and,
#                                  with DIR/tls, HTTPS on 443 for pkgs.k8s.io and
#                                  raw.githubusercontent.com (see node-start). Its
#                                  access log: $LAB_STATE/mirror/NS/access.log
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
#                                  `node-wipe` first for a reimage). NIC vn-NAME with
#                                  MAC on the bridge (host end vb-NAME), IP/GATEWAY/DNS as a systemd-networkd
#                                  file (what netplan renders), hostname NAME, the
#                                  NoCloud seed (SEED_DIR/user-data, meta-data, and
#                                  network-config/vendor-data if present). Console in
#                                  $LAB_STATE/nodes/NAME/console.log. Returns once the node's
#                                  systemd runs (not when it finished booting).
#   lab.sh node-exec NAME CMD…     run CMD inside the running node (its namespaces,
#                                  PATH of the node); exit status of CMD
#   lab.sh node-wait NAME [SECS]   wait until cloud-init finished in NAME (default 600 s);
#                                  prints its result; 1 if it failed, 124 on timeout
#   lab.sh node-stop NAME [SECS]   clean power-off (the node's systemd shuts down); after
#                                  SECS (90) without it, the power is cut; exit 1 then
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
# The version bootherd's control-plane script downloads (src/firstboot/mod.rs).
CALICO_VERSION=${CALICO_VERSION:-$(sed -n 's/^pub const CALICO_VERSION: &str = "\(.*\)";/\1/p' "$here/../../src/firstboot/mod.rs" 2>/dev/null)}
CALICO_VERSION=${CALICO_VERSION:-v3.29.2}

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
    stamp=$(printf '%s\n' "root-v2" "$SUITE" "$DEBIAN_MIRROR" "$LAB_MIRROR_ADDR" "$KEY_FPR" \
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
    # A persistent journal, as Ubuntu keeps one: a node's logs stay on its
    # disk after it stopped (journalctl -D DISK_DIR/upper/var/log/journal).
    install -d -m 2755 "$r/var/log/journal"
}


# --- repo -----------------------------------------------------------------

APT_DIR=$LAB_CACHE/apt
DEBS=$LAB_CACHE/debs

# apt on this host, resolving against the node root's dpkg status and
# Debian's archive only (none of this host's own sources, pins or state).
host_apt() {
    apt-get -q -o Dir::State::status="$LAB_ROOT/var/lib/dpkg/status" \
        -o Dir::State="$APT_DIR/state" -o Dir::State::Lists="$APT_DIR/lists" \
        -o Dir::Cache="$APT_DIR/cache" -o Dir::Cache::archives="$DEBS" \
        -o Dir::Etc::SourceList="$APT_DIR/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null \
        -o APT::Architecture=amd64 -o APT::Architectures::=amd64 -o Acquire::Languages=none \
        -o APT::Install-Recommends=1 -o Debug::NoLocking=1 "$@"
}

# The Depends of the stand-in debs that they do not provide themselves.
standin_depends() {
    local deb
    for deb in "$@"; do
        dpkg-deb -f "$deb" Depends
        dpkg-deb -f "$deb" Pre-Depends
    done | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/:any//; s/[[:space:]]//g' |
        grep -Evx '(kubeadm|kubelet|kubectl|kubernetes-cni|cri-tools|)' | sort -u
}

sign_release() {
    local dir=$1
    rm -f "$dir/InRelease" "$dir/Release.gpg"
    lab_gpg --digest-algo SHA512 --local-user "$KEY_FPR" --clearsign -o "$dir/InRelease" "$dir/Release"
    lab_gpg --digest-algo SHA512 --local-user "$KEY_FPR" --armor --detach-sign -o "$dir/Release.gpg" "$dir/Release"
}

cmd_repo() {
    local out=$1 standins=$2 minor=$3
    need_root
    need apt-ftparchive apt-utils
    need dpkg-scanpackages dpkg-dev
    [[ "$minor" =~ ^[0-9]+\.[0-9]+$ ]] || die "K8S_MINOR must look like 1.31, not '$minor'"
    [[ -f "$LAB_ROOT/.bootherd-lab-root" ]] || die "no node root at $LAB_ROOT: run \`lab.sh root\` first (the repo holds what it lacks)"
    local standin_debs=()
    local p
    for p in kubeadm kubelet kubectl; do
        local found=("$standins/${p}_"*"_amd64.deb")
        [[ -e "${found[0]}" ]] || die "no $standins/${p}_*_amd64.deb: build the stand-ins (tests/cluster-lab/standins/build-debs.sh $standins VERSION)"
        standin_debs+=("${found[@]}")
    done
    ensure_key
    install -d "$APT_DIR/state" "$APT_DIR/lists/partial" "$APT_DIR/cache" "$DEBS/partial"
    touch "$APT_DIR/state/extended_states"
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
        "$DEBIAN_MIRROR" "$SUITE" >"$APT_DIR/sources.list"

    # The closure: what apt would install on the root (with Recommends, so a
    # plain `apt-get install` finds everything a full mirror would give it).
    local wanted extra
    mapfile -t extra < <(standin_depends "${standin_debs[@]}")
    mapfile -t wanted < <(printf '%s\n' "${REPO_PACKAGES[@]}" "${extra[@]}" | sort -u)
    local key
    key=$(printf '%s\n' "closure-v1" "$(cat "$LAB_ROOT/.bootherd-lab-root")" "${wanted[@]}" | sha256sum | cut -c1-16)
    local list=$DEBS/closure-$key.list
    local have=1 f
    if [[ -s "$list" ]]; then
        while read -r f; do
            [[ -s "$DEBS/$f" ]] || have=0
        done <"$list"
    else
        have=0
    fi
    if [[ "$have" == 0 ]]; then
        note "resolving and downloading ${wanted[*]} (and dependencies) from $DEBIAN_MIRROR"
        host_apt update >"$APT_DIR/update.log" 2>&1 || {
            cat "$APT_DIR/update.log" >&2
            die "apt-get update of $DEBIAN_MIRROR failed"
        }
        local sim
        sim=$(host_apt -s install "${wanted[@]}" 2>&1) || {
            echo "$sim" >&2
            die "apt cannot install ${wanted[*]} on the node root"
        }
        host_apt -y --download-only install "${wanted[@]}" >"$APT_DIR/download.log" 2>&1 || {
            tail -n 20 "$APT_DIR/download.log" >&2
            die "downloading the packages failed (log: $APT_DIR/download.log)"
        }
        # "Inst NAME (VERSION SUITE [ARCH])" → the cached file name.
        echo "$sim" | awk '$1 == "Inst" {
            for (i = 3; i <= NF; i++) if ($i ~ /^\(/) { v = $i; break }
            sub(/^\(/, "", v); gsub(/:/, "%3a", v)
            a = $NF; gsub(/[][)]/, "", a)
            print $2 "_" v "_" a ".deb" }' >"$list.tmp"
        while read -r f; do
            [[ -s "$DEBS/$f" ]] || die "apt did not download $f (log: $APT_DIR/download.log)"
        done <"$list.tmp"
        mv "$list.tmp" "$list"
    fi

    rm -rf "$out.partial"
    install -d "$out.partial/debian/pool/main" "$out.partial/debian/dists/$SUITE/main/binary-amd64"
    while read -r f; do
        ln "$DEBS/$f" "$out.partial/debian/pool/main/$f" 2>/dev/null || cp "$DEBS/$f" "$out.partial/debian/pool/main/$f"
    done <"$list"
    (
        cd "$out.partial/debian"
        apt-ftparchive packages pool >"dists/$SUITE/main/binary-amd64/Packages"
        gzip -9nk "dists/$SUITE/main/binary-amd64/Packages"
        apt-ftparchive -o APT::FTPArchive::Release::Origin=bootherd-lab \
            -o APT::FTPArchive::Release::Label="bootherd cluster lab" \
            -o APT::FTPArchive::Release::Suite="$SUITE" -o APT::FTPArchive::Release::Codename="$SUITE" \
            -o APT::FTPArchive::Release::Architectures=amd64 -o APT::FTPArchive::Release::Components=main \
            release "dists/$SUITE" >"dists/$SUITE/Release.tmp"
        mv "dists/$SUITE/Release.tmp" "dists/$SUITE/Release"
    )
    sign_release "$out.partial/debian/dists/$SUITE"

    # pkgs.k8s.io: one flat repository per minor, `deb [signed-by=…] URL /`.
    local k8s=$out.partial/kubernetes/core:/stable:/v$minor/deb
    install -d "$k8s/amd64"
    cp "${standin_debs[@]}" "$k8s/amd64/"
    (
        cd "$k8s"
        dpkg-scanpackages --multiversion amd64 /dev/null 2>/dev/null >Packages
        gzip -9nk Packages
        apt-ftparchive -o APT::FTPArchive::Release::Origin="obs://build.opensuse.org/isv:kubernetes:core:stable:v$minor/deb" \
            -o APT::FTPArchive::Release::Label="isv:kubernetes:core:stable:v$minor" \
            -o APT::FTPArchive::Release::Architectures=amd64 release . >Release.tmp
        mv Release.tmp Release
    )
    sign_release "$k8s"
    lab_gpg --armor --export "$KEY_FPR" >"$k8s/Release.key"

    # Other files the nodes download: the Calico operator manifest (the
    # stand-ins' own, if they ship one).
    local calico=$out.partial/files/raw.githubusercontent.com/projectcalico/calico/$CALICO_VERSION/manifests
    install -d "$calico"
    if [[ -f "$standins/tigera-operator.yaml" ]]; then
        cp "$standins/tigera-operator.yaml" "$calico/"
    else
        calico_manifest >"$calico/tigera-operator.yaml"
    fi
    # The same file where README's [mirrors] example has calico_manifest.
    install -d "$out.partial/calico"
    cp "$calico/tigera-operator.yaml" "$out.partial/calico/"
    mirror_cert "$out.partial/tls"
    lab_gpg --armor --export "$KEY_FPR" >"$out.partial/bootherd-lab-archive.asc"
    GNUPGHOME=$GNUPGHOME_LAB gpgconf --kill gpg-agent 2>/dev/null || true

    rm -rf "$out"
    mv "$out.partial" "$out"
    note "repo in $out: $(wc -l <"$list") Debian packages, ${#standin_debs[@]} stand-ins"
}

# A stand-in for Calico's tigera-operator.yaml: the namespace and the two
# CRDs the control-plane script waits for.
calico_manifest() {
    cat <<'YAML'
# bootherd cluster lab: stand-in for Calico's tigera-operator.yaml
apiVersion: v1
kind: Namespace
metadata:
  name: tigera-operator
---
YAML
    local kind plural
    for kind in Installation APIServer; do
        plural=$(echo "$kind" | tr '[:upper:]' '[:lower:]')s
        cat <<YAML
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: $plural.operator.tigera.io
spec:
  group: operator.tigera.io
  names:
    kind: $kind
    listKind: ${kind}List
    plural: $plural
    singular: ${plural%s}
  scope: Cluster
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
---
YAML
    done
}

# --- network --------------------------------------------------------------

# The kernel features the nodes need but cannot load themselves.
host_kernel() {
    if [[ -e /proc/modules ]]; then
        modprobe overlay || die "cannot load the overlay module on this host"
        modprobe br_netfilter || die "cannot load the br_netfilter module on this host"
    fi
    grep -qw overlay /proc/filesystems || die "this kernel has no overlayfs"
    [[ -d /proc/sys/net/bridge ]] || die "this kernel has no br_netfilter (net.bridge.* sysctls)"
}

cmd_net_up() {
    local ns=$1 cidr=$2 br=$LAB_BRIDGE
    need_root
    host_kernel
    install -d "$LAB_STATE/ns"
    ns_exists "$ns" || ip netns add "$ns"
    : >"$LAB_STATE/ns/$ns"
    ip -n "$ns" link set lo up
    if ! ip -n "$ns" link show "$br" >/dev/null 2>&1; then
        ip -n "$ns" link add "$br" type bridge
    fi
    # No STP, no forward delay (a node's link is up at once), no multicast
    # snooping (VRRP adverts and any other multicast reach every port).
    ip -n "$ns" link set "$br" type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    ip -n "$ns" addr replace "$cidr" dev "$br"
    ip -n "$ns" link set "$br" up
    # Bridged traffic between nodes does not go through this namespace's
    # firewall (mirror-block filters only what is addressed to the mirror).
    ip netns exec "$ns" sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 2>/dev/null || true
}

cmd_net_down() {
    local ns=$1 n
    need_root
    for n in "$LAB_STATE"/nodes/*/ns; do
        [[ -f "$n" && "$(cat "$n")" == "$ns" ]] || continue
        node_kill "$(basename "$(dirname "$n")")"
    done
    mirror_stop "$ns"
    if ns_exists "$ns"; then
        local pid
        # Anything else still in it was started in it for the lab.
        for pid in $(ip netns pids "$ns"); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns"
    fi
    rm -f "$LAB_STATE/ns/$ns"
}

# --- mirror ---------------------------------------------------------------

mirror_state() {
    echo "$LAB_STATE/mirror/$1"
}

cmd_mirror_start() {
    local ns=$1 addr=$2 dir=$3 ip port=80
    need_root
    need_ns "$ns"
    ip=${addr%%:*}
    [[ "$addr" == *:* ]] && port=${addr##*:}
    [[ -f "$dir/debian/dists/$SUITE/InRelease" ]] || die "$dir holds no lab repository: run \`lab.sh repo $dir …\` first"
    [[ "$ip" == "$LAB_MIRROR_ADDR" ]] || note "warning: the node root's apt sources name http://$LAB_MIRROR_ADDR/, not $ip"
    local st
    st=$(mirror_state "$ns")
    if [[ -f "$st/pid" ]] && kill -0 "$(cat "$st/pid")" 2>/dev/null; then
        die "a mirror already runs in $ns: \`lab.sh mirror-stop $ns\` first"
    fi
    rm -rf "$st"
    install -d "$st"
    echo "$ip" >"$st/ip"
    echo "$port" >"$st/port"
    ip -n "$ns" addr replace "$ip/32" dev "$LAB_BRIDGE"
    local args=(--dir "$dir" --bind "$ip" --port "$port" --log "$st/access.log")
    local n
    for n in "${MIRROR_NAMES[@]}"; do
        case "$n" in
            pkgs.k8s.io) args+=(--vhost "$n=kubernetes") ;;
            *) args+=(--vhost "$n=files/$n") ;;
        esac
    done
    if [[ -f "$dir/tls/mirror.crt" ]]; then
        args+=(--tls-port 443 --cert "$dir/tls/mirror.crt" --key "$dir/tls/mirror.key")
    fi
    nsenter --net="/run/netns/$ns" setsid "$PYTHON" "$here/mirror.py" "${args[@]}" \
        </dev/null >"$st/server.log" 2>&1 &
    echo $! >"$st/pid"
    local _
    for _ in $(seq 1 50); do
        if ip netns exec "$ns" curl -fsS -o /dev/null --max-time 2 \
            "http://$ip:$port/debian/dists/$SUITE/InRelease" 2>/dev/null; then
            return 0
        fi
        kill -0 "$(cat "$st/pid")" 2>/dev/null || break
        sleep 0.2
    done
    cat "$st/server.log" >&2
    die "the mirror did not come up on $ip:$port in $ns"
}

mirror_stop() {
    local ns=$1 st pid
    st=$(mirror_state "$ns")
    [[ -d "$st" ]] || return 0
    if [[ -f "$st/pid" ]]; then
        pid=$(cat "$st/pid")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 25); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    if ns_exists "$ns"; then
        ip netns exec "$ns" nft delete table inet bootherd_lab_mirror 2>/dev/null || true
        if [[ -f "$st/ip" ]]; then
            ip -n "$ns" addr del "$(cat "$st/ip")/32" dev "$LAB_BRIDGE" 2>/dev/null || true
        fi
    fi
    rm -rf "$st"
}

cmd_mirror_block() {
    local ns=$1 how=${2:-reject} st verdict
    need_root
    need nft nftables
    st=$(mirror_state "$ns")
    [[ -f "$st/ip" ]] || die "no mirror runs in $ns (lab.sh mirror-start)"
    case "$how" in
        reject) verdict="reject with tcp reset" ;;
        drop) verdict=drop ;;
        *) die "mirror-block: reject or drop, not $how" ;;
    esac
    ip netns exec "$ns" nft delete table inet bootherd_lab_mirror 2>/dev/null || true
    ip netns exec "$ns" nft -f - <<NFT
table inet bootherd_lab_mirror {
    chain input {
        type filter hook input priority -10; policy accept;
        ip daddr $(cat "$st/ip") tcp dport { $(cat "$st/port"), 443 } $verdict
    }
}
NFT
}

cmd_mirror_unblock() {
    local ns=$1
    need_root
    ip netns exec "$ns" nft delete table inet bootherd_lab_mirror 2>/dev/null || true
}

# --- nodes ----------------------------------------------------------------

node_dir() {
    echo "$LAB_STATE/nodes/$1"
}

# The pid of the node's systemd (PID 1 in its namespaces), or nothing.
node_leader() {
    local d pid c
    d=$(node_dir "$1")
    [[ -f "$d/pid" ]] || return 0
    pid=$(cat "$d/pid")
    kill -0 "$pid" 2>/dev/null || return 0
    c=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
    c=${c%% *}
    [[ -z "$c" ]] || echo "$c"
}

node_running() {
    [[ -n "$(node_leader "$1")" ]]
}

need_node() {
    node_running "$1" || die "node $1 is not running (lab.sh node-list)"
}

# A node cannot load kernel modules (no CAP_SYS_MODULE, and nspawn shows it
# no /sys/module): what the host has loaded or built in is what it gets. Its
# modprobe learns that from a modules.builtin listing the host's built-in
# modules and every module loaded on the host now, so `modprobe overlay`
# succeeds in the node exactly when the host provides overlay (load the
# modules on the host before node-start).
node_modules() {
    local r=$1 kver dir
    kver=$(uname -r)
    dir=$r/usr/lib/modules/$kver
    rm -rf "$dir"
    install -d "$dir"
    {
        [[ -f "/lib/modules/$kver/modules.builtin" ]] && cat "/lib/modules/$kver/modules.builtin"
        if [[ -r /proc/modules ]]; then
            awk '{ print "kernel/lab/" $1 ".ko" }' /proc/modules
        fi
        # A kernel without module support has no modules.builtin: what the
        # lab needs, when the kernel has it.
        grep -qw overlay /proc/filesystems && echo kernel/fs/overlayfs/overlay.ko
        [[ -d /proc/sys/net/bridge ]] && echo kernel/net/bridge/br_netfilter.ko
        [[ -d /proc/sys/net/netfilter ]] && echo kernel/net/netfilter/nf_conntrack.ko
        [[ -d /proc/sys/net/ipv4/vs ]] && printf 'kernel/net/netfilter/ipvs/%s.ko\n' ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh
        true
    } | sort -u >"$dir/modules.builtin"
    : >"$dir/modules.order"
    : >"$dir/modules.builtin.modinfo"
    depmod -b "$r" "$kver"
}

# The installed system's own configuration, as the installer leaves it.
node_install() {
    local r=$1 name=$2 mac=$3 addr=$4 gw=$5 dns=$6 seed=$7
    echo "$name" >"$r/etc/hostname"
    cat >"$r/etc/hosts" <<HOSTS
127.0.0.1 localhost
127.0.1.1 $name
::1 localhost ip6-localhost ip6-loopback
# bootherd cluster lab: these public names are served by the lab mirror.
$LAB_MIRROR_ADDR ${MIRROR_NAMES[*]}
HOSTS
    # What netplan renders for templates/cloud-init/network-config.
    cat >"$r/etc/systemd/network/10-provisioning.network" <<NET
[Match]
MACAddress=$mac

[Network]
Address=$addr
Gateway=$gw
DNS=$dns
# No router advertisements on the lab network: without this the link stays
# "configuring" (and network-online.target waits) ~12 s for one.
IPv6AcceptRA=no
NET
    # No systemd-resolved in the root: the resolver file names DNS directly.
    rm -f "$r/etc/resolv.conf"
    echo "nameserver $dns" >"$r/etc/resolv.conf"
    : >"$r/etc/machine-id"
    install -d -m 0755 "$r/var/lib/cloud/seed/nocloud"
    local f
    for f in user-data meta-data vendor-data network-config; do
        if [[ -f "$seed/$f" ]]; then
            install -m 0600 "$seed/$f" "$r/var/lib/cloud/seed/nocloud/$f"
        fi
    done
}

cgroup_prepare() {
    local name=$1 h
    CGROUP_DIRS=()
    # A host run by systemd: nspawn asks it for a delegated scope.
    [[ -d /run/systemd/system ]] && return 0
    # Otherwise a cgroup of the node's own in each hierarchy nspawn uses
    # (legacy/hybrid: name=systemd and the unified one; pure cgroup2: the
    # root), so that the nodes' systemds do not share one.
    for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
        if [[ -f "$h/cgroup.procs" ]] && { [[ "$h" != /sys/fs/cgroup ]] || [[ -f "$h/cgroup.controllers" ]]; }; then
            install -d "$h/bootherd-cluster-lab/$name"
            CGROUP_DIRS+=("$h/bootherd-cluster-lab/$name")
        fi
    done
}

cmd_node_start() {
    local ns=$1 name=$2 mac=$3 addr=$4 gw=$5 dns=$6 seed=$7 disk=${8:-}
    need_root
    need systemd-nspawn systemd-container
    need_ns "$ns"
    [[ "$name" =~ ^[a-z0-9][a-z0-9-]{0,10}$ ]] || die "node name '$name': 1-11 of a-z, 0-9, - (it names the node's NIC)"
    [[ "$mac" =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || die "MAC '$mac': write it like 52:54:00:aa:00:01 (lower case)"
    [[ "$addr" == */* ]] || die "IP/PREFIX '$addr': write it like 10.0.0.11/24"
    [[ -f "$LAB_ROOT/.bootherd-lab-root" ]] || die "no node root at $LAB_ROOT: run \`lab.sh root\` first"
    node_running "$name" && die "node $name already runs (lab.sh node-stop $name)"
    # A node that ended on its own (halted inside, or killed) is tidied first.
    node_cleanup "$name"
    disk=${disk:-$LAB_DISKS/$name}
    host_kernel

    local d
    d=$(node_dir "$name")
    rm -rf "$d"
    install -d "$d"
    echo "$ns" >"$d/ns"
    echo "$mac" >"$d/mac"
    echo "$addr" >"$d/ip"
    echo "$disk" >"$d/disk"
    install -d "$LAB_STATE/disks"
    echo "$disk" >"$LAB_STATE/disks/$name"

    # The disk: an overlay on the shared root (upper = what this machine
    # wrote), plus a plain directory for containerd, whose overlayfs
    # snapshotter cannot work on an overlayfs.
    local fresh=0
    if [[ ! -d "$disk/upper" ]]; then
        [[ -f "$seed/user-data" && -f "$seed/meta-data" ]] || die "$seed needs user-data and meta-data (NoCloud)"
        grep -q 'instance-id' "$seed/meta-data" || die "$seed/meta-data has no instance-id"
        rm -rf "$disk"
        install -d "$disk/upper" "$disk/work" "$disk/root" "$disk/containerd"
        fresh=1
    fi
    install -d "$disk/root"
    if ! mountpoint -q "$disk/root"; then
        mount -t overlay "bhlab-$name" -o "lowerdir=$LAB_ROOT,upperdir=$disk/upper,workdir=$disk/work" "$disk/root"
    fi
    if [[ "$fresh" == 1 ]]; then
        node_install "$disk/root" "$name" "$mac" "$addr" "$gw" "$dns" "$seed"
    else
        note "$name: booting its existing disk $disk (lab.sh node-wipe $name for a fresh install)"
    fi
    node_modules "$disk/root"

    # The NIC: a veth pair in NS, the node's end with the machine's MAC.
    local host_if="vb-$name" node_if="vn-$name"
    ip -n "$ns" link del "$host_if" 2>/dev/null || true
    ip -n "$ns" link add "$host_if" type veth peer name "$node_if"
    ip -n "$ns" link set "$node_if" address "$mac"
    ip -n "$ns" link set "$host_if" master "$LAB_BRIDGE" up

    cgroup_prepare "$name"
    # --console=read-only: the node's console is copied to console.log
    # (`passive` would leave it unread, and a full console blocks the
    # node's systemd, at shutdown at the latest).
    local args=(--boot --register=no -D "$disk/root" --machine="bhlab-$name"
        --network-interface="$node_if" --resolv-conf=off --timezone=off --link-journal=no
        --console=read-only --bind="$disk/containerd:/var/lib/containerd")
    [[ -d /run/systemd/system ]] || args+=(--keep-unit)
    rm -rf "/run/systemd/nspawn/propagate/bhlab-$name"

    # nspawn runs in NS (it moves the NIC into the node). /sys read-only in
    # its own mount namespace: nspawn then knows no udev runs here and does
    # not wait for udev to "initialize" the NIC.
    # shellcheck disable=SC2016 # expanded by the inner shell
    nsenter --net="/run/netns/$ns" unshare --mount --propagation slave \
        setsid bash -c '
            pidfile=$1; shift
            n=$1; shift
            for ((i = 0; i < n; i++)); do echo $$ >"$1/cgroup.procs"; shift; done
            mount -o remount,bind,ro /sys
            echo $$ >"$pidfile"
            exec systemd-nspawn "$@"' bash "$d/pid" "${#CGROUP_DIRS[@]}" "${CGROUP_DIRS[@]}" "${args[@]}" \
        </dev/null >"$d/console.log" 2>&1 &
    date +%s.%N >"$d/started"
    local _
    for _ in $(seq 1 100); do
        if node_running "$name" && [[ -e "/proc/$(node_leader "$name")/root/run/systemd/container" ]]; then
            return 0
        fi
        if [[ -f "$d/pid" ]] && ! kill -0 "$(cat "$d/pid")" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    cat "$d/console.log" >&2
    die "node $name did not start (console: $d/console.log)"
}

cmd_node_exec() {
    local name=$1 leader
    shift
    leader=$(node_leader "$name")
    [[ -n "$leader" ]] || die "node $name is not running (lab.sh node-list)"
    nsenter -t "$leader" -a -- /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
}

cmd_node_wait() {
    local name=$1 secs=${2:-600} out
    local deadline=$((SECONDS + secs))
    while ((SECONDS < deadline)); do
        need_node "$name"
        out=$(cmd_node_exec "$name" cloud-init status 2>/dev/null || true)
        case "$out" in
            *"status: done"*)
                cmd_node_exec "$name" cloud-init status --long 2>/dev/null || true
                return 0
                ;;
            *"status: error"* | *"status: degraded"*)
                cmd_node_exec "$name" cloud-init status --long 2>/dev/null || true
                return 1
                ;;
        esac
        sleep 0.5
    done
    note "cloud-init still running in $name after ${secs}s"
    return 124
}

# After the node's nspawn ended: unmount its disk, drop its NIC and cgroups.
node_cleanup() {
    local name=$1 d disk ns
    d=$(node_dir "$name")
    [[ -d "$d" ]] || return 0
    disk=$(cat "$d/disk" 2>/dev/null || true)
    ns=$(cat "$d/ns" 2>/dev/null || true)
    if [[ -n "$disk" ]] && mountpoint -q "$disk/root" 2>/dev/null; then
        umount "$disk/root" 2>/dev/null || umount -l "$disk/root"
    fi
    if [[ -n "$ns" ]] && ns_exists "$ns"; then
        ip -n "$ns" link del "vb-$name" 2>/dev/null || true
    fi
    local h
    for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
        [[ -d "$h/bootherd-cluster-lab/$name" ]] || continue
        find "$h/bootherd-cluster-lab/$name" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    rm -rf "/run/systemd/nspawn/propagate/bhlab-$name"
    rm -f "$d/pid"
}

wait_gone() {
    local pid=$1 secs=$2
    local deadline=$((SECONDS + secs))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

cmd_node_stop() {
    local name=$1 secs=${2:-90} d pid
    need_root
    d=$(node_dir "$name")
    need_node "$name"
    pid=$(cat "$d/pid")
    # nspawn passes SIGTERM on as a halt request to the node's systemd.
    kill -TERM "$pid"
    if ! wait_gone "$pid" "$secs"; then
        note "$name did not power off in ${secs}s; cutting its power"
        node_kill "$name"
        return 1
    fi
    node_cleanup "$name"
}

# The power cut: the link goes first (a dead machine answers no ARP for
# the VIP it held), then every process of the node at once.
node_kill() {
    local name=$1 d pid leader ns
    d=$(node_dir "$name")
    [[ -d "$d" ]] || return 0
    ns=$(cat "$d/ns" 2>/dev/null || true)
    if [[ -n "$ns" ]] && ns_exists "$ns"; then
        ip -n "$ns" link del "vb-$name" 2>/dev/null || true
    fi
    leader=$(node_leader "$name")
    [[ -z "$leader" ]] || kill -KILL "$leader" 2>/dev/null || true
    if [[ -f "$d/pid" ]]; then
        pid=$(cat "$d/pid")
        wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || true
    fi
    node_cleanup "$name"
}

cmd_node_wipe() {
    local arg=$1 disk
    need_root
    if [[ "$arg" == */* ]]; then
        disk=$arg
    else
        node_running "$arg" && die "node $arg runs: lab.sh node-stop $arg first"
        node_cleanup "$arg"
        disk=$(cat "$LAB_STATE/disks/$arg" 2>/dev/null || echo "$LAB_DISKS/$arg")
    fi
    if mountpoint -q "$disk/root" 2>/dev/null; then
        die "$disk/root is mounted: is its node still running?"
    fi
    rm -rf "$disk"
}

cmd_node_list() {
    local d name
    for d in "$LAB_STATE"/nodes/*/; do
        [[ -d "$d" ]] || continue
        name=$(basename "$d")
        node_running "$name" || continue
        printf '%s %s %s %s %s %s\n' "$name" "$(cat "$d/ns")" "$(node_leader "$name")" \
            "$(cat "$d/ip")" "$(cat "$d/mac")" "$(cat "$d/disk")"
    done
}

cmd_down() {
    local d name f
    need_root
    local pids=()
    for d in "$LAB_STATE"/nodes/*/; do
        [[ -d "$d" ]] || continue
        name=$(basename "$d")
        node_kill "$name" &
        pids+=($!)
    done
    for f in "${pids[@]}"; do
        wait "$f" || true
    done
    rm -rf "$LAB_STATE/nodes"
    for f in "$LAB_STATE"/mirror/*; do
        [[ -d "$f" ]] || continue
        mirror_stop "$(basename "$f")"
    done
    for f in "$LAB_STATE"/ns/*; do
        [[ -f "$f" ]] || continue
        cmd_net_down "$(basename "$f")"
    done
    for f in "$LAB_STATE"/disks/*; do
        [[ -f "$f" ]] || continue
        cmd_node_wipe "$(cat "$f")"
        rm -f "$f"
    done
    for f in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
        rmdir "$f/bootherd-cluster-lab" 2>/dev/null || true
    done
    rm -rf "$LAB_STATE"
    rmdir "$LAB_DISKS" 2>/dev/null || true
}

usage() {
    die "usage: see the header of $0"
}

[[ $# -ge 1 ]] || usage
sub=$1
shift
case "$sub" in
    root) [[ $# -le 1 ]] || die "root [CACHE_DIR]"; cmd_root "$@" ;;
    repo) [[ $# -eq 3 ]] || die "repo OUT_DIR STANDIN_DEBS_DIR K8S_MINOR"; cmd_repo "$@" ;;
    net-up) [[ $# -eq 2 ]] || die "net-up NS CIDR"; cmd_net_up "$@" ;;
    net-down) [[ $# -eq 1 ]] || die "net-down NS"; cmd_net_down "$1" ;;
    mirror-start) [[ $# -eq 3 ]] || die "mirror-start NS ADDR DIR"; cmd_mirror_start "$@" ;;
    mirror-stop) [[ $# -eq 1 ]] || die "mirror-stop NS"; need_root; mirror_stop "$1" ;;
    mirror-block) [[ $# -ge 1 && $# -le 2 ]] || die "mirror-block NS [reject|drop]"; cmd_mirror_block "$@" ;;
    mirror-unblock) [[ $# -eq 1 ]] || die "mirror-unblock NS"; cmd_mirror_unblock "$1" ;;
    node-start) [[ $# -ge 7 && $# -le 8 ]] || die "node-start NS NAME MAC IP/PREFIX GATEWAY DNS SEED_DIR [DISK_DIR]"; cmd_node_start "$@" ;;
    node-exec) [[ $# -ge 2 ]] || die "node-exec NAME CMD…"; cmd_node_exec "$@" ;;
    node-wait) [[ $# -ge 1 && $# -le 2 ]] || die "node-wait NAME [SECS]"; cmd_node_wait "$@" ;;
    node-stop) [[ $# -ge 1 && $# -le 2 ]] || die "node-stop NAME [SECS]"; cmd_node_stop "$@" ;;
    node-kill) [[ $# -eq 1 ]] || die "node-kill NAME"; need_root; node_running "$1" || die "node $1 is not running"; node_kill "$1" ;;
    node-wipe) [[ $# -eq 1 ]] || die "node-wipe NAME|DISK_DIR"; cmd_node_wipe "$1" ;;
    node-list) cmd_node_list ;;
    down) cmd_down ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *) die "unknown command $sub (usage: see the header of $0)" ;;
esac
