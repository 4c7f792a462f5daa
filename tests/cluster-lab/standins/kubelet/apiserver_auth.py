"""Authentication and authorization of the API server stand-in.

Authentication as kube-apiserver does it with kubeadm's flags: a client
certificate verified against --client-ca-file (user = CN, groups = O), a
bootstrap token (`Bearer <id>.<secret>` checked against the
bootstrap-token-<id> Secret: secret, usage-bootstrap-authentication and
`expiration`; user system:bootstrap:<id>, groups system:bootstrappers +
auth-extra-groups), else anonymous.

Authorization is a fixed model of the RBAC kubeadm sets up, decided on the
objects actually present: system:masters may do anything;
kubeadm:cluster-admins only once the kubeadm:cluster-admins
ClusterRoleBinding exists (so admin.conf needs super-admin.conf first, as
in 1.29+); bootstrap tokens may read kubeadm-config/kubelet-config, get
Nodes and create CSRs only while kubeadm's RoleBindings/ClusterRoleBindings
for them exist; anonymous may read health, version and — once kubeadm's
RoleBinding exists — kube-public/cluster-info. Nodes and the control-plane
components may do anything (the Node authorizer is not modelled)."""

import base64
import datetime

from apiserver_store import StoreError

TRUSTED_USERS = ("system:kube-controller-manager", "system:kube-scheduler", "kube-apiserver-kubelet-client")


class Identity:
    def __init__(self, user, groups):
        self.user, self.groups = user, list(groups)

    def __repr__(self):
        return self.user


def _secret_field(secret, key):
    data = secret.get("data") or {}
    if key in data:
        return base64.b64decode(data[key]).decode()
    return (secret.get("stringData") or {}).get(key, "")


def token_expired(secret):
    exp = _secret_field(secret, "expiration")
    if not exp:
        return False
    when = datetime.datetime.fromisoformat(exp.replace("Z", "+00:00"))
    return when <= datetime.datetime.now(datetime.timezone.utc)


def authenticate(store, peer_cert, auth_header):
    if peer_cert:
        subject = dict(x[0] for x in peer_cert.get("subject", ()) if len(x) == 1 and x[0][0] == "commonName")
        orgs = [x[0][1] for x in peer_cert.get("subject", ()) if x[0][0] == "organizationName"]
        return Identity(subject.get("commonName", ""), orgs + ["system:authenticated"])
    if auth_header and auth_header.startswith("Bearer "):
        tok = auth_header[7:].strip()
        tid, _, secret = tok.partition(".")
        try:
            s = store.get("", "secrets", "kube-system", f"bootstrap-token-{tid}")
        except StoreError:
            return None
        if (s.get("type") != "bootstrap.kubernetes.io/token" or _secret_field(s, "token-secret") != secret
                or _secret_field(s, "usage-bootstrap-authentication") != "true" or token_expired(s)):
            return None
        extra = [g for g in _secret_field(s, "auth-extra-groups").split(",") if g]
        return Identity(f"system:bootstrap:{tid}", ["system:bootstrappers", *extra, "system:authenticated"])
    return Identity("system:anonymous", ["system:unauthenticated"])


def _bound(store, kind, ns, name):
    if kind == "crb":
        return store.exists("rbac.authorization.k8s.io", "clusterrolebindings", "", name)
    return store.exists("rbac.authorization.k8s.io", "rolebindings", ns, name)


def allowed(store, who, verb, group, resource, ns, name, path):
    if "system:masters" in who.groups or who.user in TRUSTED_USERS or "system:nodes" in who.groups:
        return True
    if "kubeadm:cluster-admins" in who.groups:
        return _bound(store, "crb", "", "kubeadm:cluster-admins")
    if path in ("/livez", "/readyz", "/healthz", "/version") or path.startswith(("/livez/", "/readyz/")):
        return True
    if who.user == "system:anonymous":
        return (verb == "get" and resource == "configmaps" and ns == "kube-public" and name == "cluster-info"
                and _bound(store, "rb", "kube-public", "kubeadm:bootstrap-signer-clusterinfo"))
    if "system:bootstrappers" in who.groups:
        if resource == "configmaps" and ns == "kube-system" and verb == "get":
            binding = {"kubeadm-config": "kubeadm:nodes-kubeadm-config",
                       "kubelet-config": "kubeadm:kubelet-config"}.get(name)
            return bool(binding) and _bound(store, "rb", "kube-system", binding)
        if resource == "nodes" and verb == "get":
            return _bound(store, "crb", "", "kubeadm:get-nodes")
        if resource == "certificatesigningrequests" and verb in ("create", "get", "list", "watch"):
            return _bound(store, "crb", "", "kubeadm:kubelet-bootstrap")
        if path.startswith(("/api", "/apis")) and resource == "":
            return True  # discovery
    if path.startswith(("/api", "/apis")) and resource == "" and who.user != "system:anonymous":
        return True
    return False
