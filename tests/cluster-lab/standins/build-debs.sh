#!/usr/bin/env bash
# Packages the Kubernetes stand-ins as kubeadm_VERSION-1.1_amd64.deb,
# kubelet_… and kubectl_… in OUTDIR, named and versioned like the
# pkgs.k8s.io packages so the lab's apt repository can serve them to the
# unchanged role scripts. See README.md for what differs from the real
# packages' metadata and why.
#
#   build-debs.sh OUTDIR VERSION        e.g. build-debs.sh /tmp/debs 1.31.9
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 OUTDIR VERSION (e.g. 1.31.9)" >&2
    exit 2
fi
out=$1
version=$2
if ! [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    echo "VERSION must look like 1.31.9, not '$version'" >&2
    exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# control PKG DEPENDS DESCRIPTION: the DEBIAN/control of PKG.
control() {
    local pkg=$1 depends=$2 description=$3
    mkdir -p "$work/$pkg/DEBIAN"
    cat >"$work/$pkg/DEBIAN/control" <<CONTROL
Package: $pkg
Version: $version-1.1
Architecture: amd64
Maintainer: Kubernetes Authors <dev@kubernetes.io>
Section: admin
Priority: optional
Homepage: https://kubernetes.io
Depends: $depends
Description: $description
 bootherd cluster-lab stand-in (Python), not the real Kubernetes binary.
CONTROL
}

# modules PKG DIR...: the shared library plus DIRs' Python modules, with
# the VERSION they model, into /usr/lib/PKG-standin.
modules() {
    local pkg=$1 lib d
    shift
    lib="$work/$pkg/usr/lib/$pkg-standin"
    mkdir -p "$lib"
    install -m 0644 "$here"/lib/*.py "$lib/"
    for d in "$@"; do
        install -m 0644 "$here/$d"/*.py "$lib/"
    done
    printf '%s\n' "$version" >"$lib/VERSION"
}

binary() {
    local pkg=$1
    install -D -m 0755 "$here/$pkg/$pkg" "$work/$pkg/usr/bin/$pkg"
}

# kubeadm: real 1.30-1.31 also depend on cri-tools, which the lab has no
# package for; the stand-in never runs crictl.
control kubeadm "python3, python3-yaml, openssl" "Command-line utility for administering a Kubernetes cluster"
binary kubeadm
modules kubeadm kubeadm
install -D -m 0644 "$here/kubeadm/10-kubeadm.conf" \
    "$work/kubeadm/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"

# kubelet: like pkgs.k8s.io's 1.31.14+ packages, no conntrack, ethtool or
# iproute2; no kubernetes-cni (no CNI runs in the lab); etcd-server is the
# etcd "image" the etcd static Pod runs.
control kubelet "iptables, mount, util-linux, etcd-server, python3, python3-yaml, openssl" \
    "Node agent for Kubernetes clusters"
binary kubelet
modules kubelet kubelet
install -m 0755 "$here/kubelet/kube-apiserver" "$here/kubelet/component-stub" "$work/kubelet/usr/lib/kubelet-standin/"
install -D -m 0644 "$here/kubelet/kubelet.service" "$work/kubelet/usr/lib/systemd/system/kubelet.service"
install -D -m 0644 "$here/kubelet/kubelet.env" "$work/kubelet/etc/default/kubelet"
printf '/etc/default/kubelet\n' >"$work/kubelet/DEBIAN/conffiles"
# dpkg-deb keeps no empty directories; the real package ships these too.
install -D -m 0644 /dev/null "$work/kubelet/etc/kubernetes/manifests/.kubelet-keep"
install -D -m 0644 /dev/null "$work/kubelet/var/lib/kubelet/.kubelet-keep"
cat >"$work/kubelet/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
# Debian's etcd-server enables its own etcd on ports 2379/2380, which
# kubeadm's preflight needs free, and gives it a data dir in /var/lib/etcd,
# which kubeadm's preflight needs empty: in the lab etcd runs only as the
# static Pod (the real kubelet pulls no etcd package), so the package's
# service is masked and, on a first install, its data removed.
set -e
if [ "$1" = configure ]; then
    ln -sf /dev/null /etc/systemd/system/etcd.service
    if [ -d /run/systemd/system ]; then
        systemctl stop etcd.service >/dev/null 2>&1 || true
        systemctl daemon-reload || true
    fi
    if [ -z "$2" ]; then
        rm -rf /var/lib/etcd/default
    fi
fi
POSTINST
chmod 0755 "$work/kubelet/DEBIAN/postinst"

control kubectl "python3, python3-yaml" "Command-line utility for interacting with a Kubernetes cluster"
binary kubectl
modules kubectl kubectl

for pkg in kubeadm kubelet kubectl; do
    dpkg-deb --root-owner-group --build "$work/$pkg" "$out/${pkg}_${version}-1.1_amd64.deb" >/dev/null
    echo "$out/${pkg}_${version}-1.1_amd64.deb"
done
