"""kubeadm's kubeconfig phase: which files, which identity, which server.

admin.conf and super-admin.conf (1.29+) point at controlPlaneEndpoint;
controller-manager.conf and scheduler.conf at the node's own API server;
kubelet.conf at controlPlaneEndpoint, or at the node's own API server
where ControlPlaneKubeletLocalMode is on (k8s_versions). An existing file
is kept when its CA and server match, and is an error otherwise, as in
kubeadm's createKubeConfigFileIfNotExists."""

import os

import k8s_versions as kv
import kubeconfig
import pki
from config import KUBERNETES_DIR, control_plane_endpoint, local_url, url
from out import say


class KubeconfigError(Exception):
    pass


def _write(name, cfg):
    path = os.path.join(KUBERNETES_DIR, name)
    if os.path.exists(path):
        old = kubeconfig.load(path)
        if kubeconfig.ca_pem(old) != kubeconfig.ca_pem(cfg):
            raise KubeconfigError(f"a kubeconfig file \"{path}\" exists already but has got the wrong CA cert")
        if kubeconfig.server(old) != kubeconfig.server(cfg):
            raise KubeconfigError(f"a kubeconfig file \"{path}\" exists already but has got the wrong API "
                                  f"Server URL")
        say(f"[kubeconfig] Using existing kubeconfig file: \"{path}\"")
        return
    say(f"[kubeconfig] Writing \"{name}\" kubeconfig file")
    kubeconfig.write(path, cfg)


def _client(cluster, server, cn, orgs):
    d = cluster["certificatesDir"]
    ca_crt, ca_key = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
    cert, key = pki.issue(ca_crt, ca_key, cn, orgs, ["clientAuth"])
    with open(ca_crt, "rb") as f:
        ca = f.read()
    return kubeconfig.build(server, ca, cn, cluster["clusterName"], cert, key)


def specs(version, cluster, local_ep, node, init):
    """{file name: (server, CN, [O])} for this node."""
    cpe = url(control_plane_endpoint(cluster, local_ep))
    local = local_url(local_ep)
    admins = "kubeadm:cluster-admins" if kv.has_super_admin(version) else "system:masters"
    out = {"admin.conf": (cpe, "kubernetes-admin", [admins])}
    if init:
        if kv.has_super_admin(version):
            out["super-admin.conf"] = (cpe, "kubernetes-super-admin", ["system:masters"])
        kubelet_server = local if kv.kubelet_local_mode(version) else cpe
        out["kubelet.conf"] = (kubelet_server, f"system:node:{node}", ["system:nodes"])
    out["controller-manager.conf"] = (local, "system:kube-controller-manager", [])
    out["scheduler.conf"] = (local, "system:kube-scheduler", [])
    return out


def write_all(version, cluster, local_ep, node, init):
    say(f"[kubeconfig] Using kubeconfig folder \"{KUBERNETES_DIR}\"")
    for name, (server, cn, orgs) in specs(version, cluster, local_ep, node, init).items():
        _write(name, _client(cluster, server, cn, orgs))
