"""The API-server side of kubeadm init and join: the admin client bootstrap
(EnsureAdminClusterRoleBinding), upload-config, mark-control-plane,
bootstrap-token (Secrets, RBAC, cluster-info) and the addon objects, with
the objects, names and RBAC kubeadm creates."""

import base64
import datetime
import os

import yaml

import apiclient
import k8s_versions as kv
import kubeconfig
from config import KUBERNETES_DIR, local_url
from out import PhaseError, human, parse_duration, poll, say

KS = "/api/v1/namespaces/kube-system"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
NODE_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"


def _crb(name, role, subjects):
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                     "kind": "ClusterRole", "name": role},
            "subjects": subjects}


def _group(name):
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name}


def _role_and_binding(client, ns, name, rules, subjects):
    client.create_or_update(f"{RBAC}/namespaces/{ns}/roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": ns}, "rules": rules})
    client.create_or_update(f"{RBAC}/namespaces/{ns}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": subjects})


def init_client(phase, version, local_ep, timeout):
    """kubeadm init's Client(): admin.conf, bootstrapped through
    super-admin.conf when the kubeadm:cluster-admins binding is missing.
    Through controlPlaneEndpoint as written, or the local API server where
    the version does that (k8s_versions.init_client_uses_local_endpoint)."""
    server = local_url(local_ep) if kv.init_client_uses_local_endpoint(version) else None
    admin = apiclient.Client.from_kubeconfig(kubeconfig.load(os.path.join(KUBERNETES_DIR, "admin.conf")), server)
    if not kv.has_super_admin(version):
        return admin
    crb = _crb("kubeadm:cluster-admins", "cluster-admin", [_group("kubeadm:cluster-admins")])

    def attempt(client):
        status, body = client.request("POST", f"{RBAC}/clusterrolebindings", crb)
        if status in (201, 200, 409):
            return "ok"
        if status == 403:
            return "forbidden"
        raise apiclient.APIError(status, body)

    result, err = poll(timeout, 0.5, lambda: attempt(admin))
    if result == "forbidden":
        sup = apiclient.Client.from_kubeconfig(
            kubeconfig.load(os.path.join(KUBERNETES_DIR, "super-admin.conf")), server)
        result, err = poll(timeout, 0.5, lambda: attempt(sup) == "ok" and "ok")
    if result != "ok":
        raise PhaseError(phase, f"could not bootstrap the admin user in file admin.conf: unable to create "
                                f"ClusterRoleBinding: {err or 'forbidden'}")
    return admin


def upload_config(client, cluster_doc, kubelet_cfg):
    say("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" "
        "Namespace")
    client.create_or_update(f"{KS}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
        "data": {"ClusterConfiguration": yaml.safe_dump(cluster_doc, sort_keys=True)}})
    readers = [_group(NODE_TOKEN_GROUP), _group("system:nodes")]
    _role_and_binding(client, "kube-system", "kubeadm:nodes-kubeadm-config",
                      [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kubeadm-config"],
                        "verbs": ["get"]}], readers)
    say("[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for "
        "the kubelets in the cluster")
    client.create_or_update(f"{KS}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubelet-config", "namespace": "kube-system"},
        "data": {"kubelet": yaml.safe_dump(kubelet_cfg, sort_keys=True)}})
    _role_and_binding(client, "kube-system", "kubeadm:kubelet-config",
                      [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kubelet-config"],
                        "verbs": ["get"]}], readers)


def mark_control_plane(phase, client, node, taints, timeout):
    say(f"[mark-control-plane] Marking the node {node} as control-plane by adding the labels: "
        f"[node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]")

    def patch():
        try:
            current = client.get(f"/api/v1/nodes/{node}")
        except apiclient.APIError as e:
            if e.status == 404:
                return False
            raise
        have = current.get("spec", {}).get("taints") or []
        merged = have + [t for t in taints if t not in have]
        client.merge_patch(f"/api/v1/nodes/{node}", {
            "metadata": {"labels": {"node-role.kubernetes.io/control-plane": "",
                                    "node.kubernetes.io/exclude-from-external-load-balancers": ""}},
            "spec": {"taints": merged}})
        return True

    ok, err = poll(timeout, 1, patch)
    if not ok:
        raise PhaseError(phase, f"error patching Node \"{node}\": timed out waiting for the condition "
                                f"(last error: {err or 'node not registered'})")
    if taints:
        say(f"[mark-control-plane] Marking the node {node} as control-plane by adding the taints "
            f"[{', '.join(t['key'] + ':' + t['effect'] for t in taints)}]")


def _token_secret(t):
    tid, secret = t["token"].split(".")
    ttl = parse_duration(t.get("ttl", "24h0m0s"))
    data = {"token-id": tid, "token-secret": secret}
    if t.get("description"):
        data["description"] = t["description"]
    if ttl > 0:
        exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=ttl)
        data["expiration"] = exp.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    for u in t.get("usages") or []:
        data[f"usage-bootstrap-{u}"] = "true"
    if t.get("groups"):
        data["auth-extra-groups"] = ",".join(t["groups"])
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": f"bootstrap-token-{tid}", "namespace": "kube-system"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def bootstrap_tokens(client, tokens, admin_conf_path, ca_path):
    say("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles")
    for t in tokens:
        client.create_or_update(f"{KS}/secrets", _token_secret(t))
    client.create_or_update(f"{RBAC}/clusterroles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "kubeadm:get-nodes"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]})
    client.create_or_update(f"{RBAC}/clusterrolebindings",
                            _crb("kubeadm:get-nodes", "kubeadm:get-nodes", [_group(NODE_TOKEN_GROUP)]))
    say("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes")
    client.create_or_update(f"{RBAC}/clusterrolebindings",
                            _crb("kubeadm:kubelet-bootstrap", "system:node-bootstrapper", [_group(NODE_TOKEN_GROUP)]))
    say("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes "
        "to get long term certificate credentials")
    client.create_or_update(f"{RBAC}/clusterrolebindings", _crb(
        "kubeadm:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        [_group(NODE_TOKEN_GROUP)]))
    say("[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically approve CSRs "
        "from a Node Bootstrap Token")
    client.create_or_update(f"{RBAC}/clusterrolebindings", _crb(
        "kubeadm:node-autoapprove-certificate-rotation",
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", [_group("system:nodes")]))
    say("[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node client certificates "
        "in the cluster")
    # cluster-info carries admin.conf's server as written (the controlPlaneEndpoint).
    server = kubeconfig.server(kubeconfig.load(admin_conf_path))
    with open(ca_path, "rb") as f:
        ca = base64.b64encode(f.read()).decode()
    info = {"apiVersion": "v1", "clusters": [{"cluster": {"certificate-authority-data": ca, "server": server},
                                              "name": ""}],
            "contexts": None, "current-context": "", "kind": "Config", "preferences": {}, "users": None}
    say("[bootstrap-token] Creating the \"cluster-info\" ConfigMap in the \"kube-public\" namespace")
    status, body = client.request("POST", "/api/v1/namespaces/kube-public/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": yaml.safe_dump(info, sort_keys=True)}})
    if status >= 300 and status != 409:
        raise apiclient.APIError(status, body)
    _role_and_binding(client, "kube-public", "kubeadm:bootstrap-signer-clusterinfo",
                      [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"],
                        "verbs": ["get"]}],
                      [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}])


def addons(client, cluster, version):
    """CoreDNS and kube-proxy as objects (nothing runs them in the lab)."""
    for name, data in (("coredns", {"Corefile": f".:53 {{\n    kubernetes {cluster['networking']['dnsDomain']} "
                                                 f"in-addr.arpa ip6.arpa\n    forward . /etc/resolv.conf\n}}\n"}),
                       ("kube-proxy", {"config.conf": "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
                                                      "kind: KubeProxyConfiguration\n"})):
        client.create_or_update(f"{KS}/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                     "metadata": {"name": name, "namespace": "kube-system"},
                                                     "data": data})
    client.create_or_update("/apis/apps/v1/namespaces/kube-system/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "coredns", "namespace": "kube-system",
                                                                   "labels": {"k8s-app": "kube-dns"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                 "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                              "spec": {"containers": [{"name": "coredns",
                                                       "image": "registry.k8s.io/coredns/coredns:v1.11.3"}]}}}})
    say("[addons] Applied essential addon: CoreDNS")
    client.create_or_update("/apis/apps/v1/namespaces/kube-system/daemonsets", {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "kube-proxy", "namespace": "kube-system",
                                                                  "labels": {"k8s-app": "kube-proxy"}},
        "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                 "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}},
                              "spec": {"containers": [{"name": "kube-proxy",
                                                       "image": f"registry.k8s.io/kube-proxy:v{version}"}]}}}})
    say("[addons] Applied essential addon: kube-proxy")


def fetch_cluster_configuration(client):
    """kubeadm-config and kubelet-config as a joining node reads them."""
    cm = client.get(f"{KS}/configmaps/kubeadm-config")
    cluster = yaml.safe_load(cm["data"]["ClusterConfiguration"])
    kubelet = yaml.safe_load(client.get(f"{KS}/configmaps/kubelet-config")["data"]["kubelet"])
    return cluster, kubelet


def wait_api_call(timeout, fn, what):
    ok, err = poll(timeout, 1, fn)
    if not ok:
        raise TimeoutError(f"{what}: timed out after {human(timeout)}: {err}")
    return ok
