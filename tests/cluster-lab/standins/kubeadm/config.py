"""kubeadm's configuration files (kubeadm.k8s.io/v1beta4; v1beta3 too while
the version still reads it): InitConfiguration + ClusterConfiguration for
init, JoinConfiguration for join, plus KubeletConfiguration documents.
Defaults are kubeadm's; what the stand-in does not use is accepted and
ignored, and unknown fields are warned about as kubeadm's strict decoder
does. Wrong types that kubeadm rejects (v1beta4's list-form `extraArgs` /
`kubeletExtraArgs` given as a map, and the reverse in v1beta3) fail."""

import ipaddress
import os
import random
import socket
import subprocess

import yaml

from out import parse_duration, scaled, warn

KUBERNETES_DIR = "/etc/kubernetes"
MANIFESTS_DIR = "/etc/kubernetes/manifests"
KUBELET_DIR = "/var/lib/kubelet"

TIMEOUT_DEFAULTS = {
    "controlPlaneComponentHealthCheck": "4m0s",
    "kubeletHealthCheck": "4m0s",
    "kubernetesAPICall": "1m0s",
    "etcdAPICall": "2m0s",
    "tlsBootstrap": "5m0s",
    "discovery": "5m0s",
    "upgradeManifests": "5m0s",
}

KNOWN = {
    "InitConfiguration": {"apiVersion", "kind", "bootstrapTokens", "nodeRegistration", "localAPIEndpoint",
                          "certificateKey", "skipPhases", "patches", "timeouts", "dryRun"},
    "ClusterConfiguration": {"apiVersion", "kind", "etcd", "networking", "kubernetesVersion",
                             "controlPlaneEndpoint", "apiServer", "controllerManager", "scheduler", "dns",
                             "proxy", "certificatesDir", "imageRepository", "featureGates", "clusterName",
                             "encryptionAlgorithm", "certificateValidityPeriod", "caCertificateValidityPeriod"},
    "JoinConfiguration": {"apiVersion", "kind", "dryRun", "nodeRegistration", "caCertPath", "discovery",
                          "controlPlane", "skipPhases", "patches", "timeouts"},
}


class ConfigError(Exception):
    pass


def _args(value, where, api):
    """extraArgs as a list of (name, value) — v1beta4 lists, v1beta3 maps."""
    if value is None:
        return []
    if api.endswith("v1beta4"):
        if not isinstance(value, list):
            raise ConfigError(f"error unmarshaling configuration: strict decoding error: json: cannot "
                              f"unmarshal object into Go struct field {where} of type []v1beta4.Arg")
        return [[a["name"], str(a["value"])] for a in value]
    if not isinstance(value, dict):
        raise ConfigError(f"error unmarshaling configuration: json: cannot unmarshal array into Go "
                          f"struct field {where} of type map[string]string")
    return [[k, str(v)] for k, v in value.items()]


def _warn_unknown(doc):
    for key in doc:
        if key not in KNOWN.get(doc.get("kind"), doc.keys()):
            warn(f"[config] WARNING: strict decoding error: unknown field \"{key}\" in {doc['kind']}")


def load_documents(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    out = {}
    for d in docs:
        api, kind = d.get("apiVersion", ""), d.get("kind", "")
        if kind in KNOWN:
            if api not in ("kubeadm.k8s.io/v1beta4", "kubeadm.k8s.io/v1beta3"):
                raise ConfigError(f"no kind \"{kind}\" is registered for version \"{api}\"")
            _warn_unknown(d)
        out[kind] = d
    return out


def _timeouts(doc):
    t = dict(TIMEOUT_DEFAULTS)
    t.update((doc or {}).get("timeouts") or {})
    return {k: scaled(parse_duration(v)) for k, v in t.items()}


def _default_address():
    """The address of the default route's interface, as kubeadm picks one."""
    res = subprocess.run(["ip", "-4", "route", "get", "192.0.2.1"], capture_output=True, text=True)
    for i, w in enumerate(res.stdout.split()):
        if w == "src":
            return res.stdout.split()[i + 1]
    raise ConfigError("unable to select an IP from default routes")


def _node_registration(doc, api, control_plane):
    nr = dict(doc.get("nodeRegistration") or {})
    nr.setdefault("name", socket.gethostname().lower())
    nr.setdefault("criSocket", "unix:///var/run/containerd/containerd.sock")
    nr["kubeletExtraArgs"] = _args(nr.get("kubeletExtraArgs"), "nodeRegistration.kubeletExtraArgs", api)
    if "taints" not in nr or nr["taints"] is None:
        nr["taints"] = ([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
                        if control_plane else [])
    nr["ignorePreflightErrors"] = [e.lower() for e in nr.get("ignorePreflightErrors") or []]
    return nr


def _endpoint(ep):
    ep = dict(ep or {})
    if not ep.get("advertiseAddress"):
        ep["advertiseAddress"] = _default_address()
    ipaddress.ip_address(ep["advertiseAddress"])
    ep["bindPort"] = int(ep.get("bindPort") or 6443)
    return ep


def random_token():
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    rnd = random.SystemRandom()
    return "".join(rnd.choice(alphabet) for _ in range(6)) + "." + "".join(rnd.choice(alphabet) for _ in range(16))


def cluster_defaults(cc):
    """ClusterConfiguration with kubeadm's defaults filled in."""
    cc = dict(cc or {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration"})
    api = cc.get("apiVersion", "kubeadm.k8s.io/v1beta4")
    cc.setdefault("clusterName", "kubernetes")
    cc.setdefault("certificatesDir", "/etc/kubernetes/pki")
    cc.setdefault("imageRepository", "registry.k8s.io")
    cc.setdefault("controlPlaneEndpoint", "")
    net = dict(cc.get("networking") or {})
    net.setdefault("serviceSubnet", "10.96.0.0/12")
    net.setdefault("dnsDomain", "cluster.local")
    cc["networking"] = net
    etcd = dict(cc.get("etcd") or {})
    if "external" not in etcd:
        local = dict(etcd.get("local") or {})
        local.setdefault("dataDir", "/var/lib/etcd")
        local["extraArgs"] = _args(local.get("extraArgs"), "etcd.local.extraArgs", api)
        etcd["local"] = local
    cc["etcd"] = etcd
    for comp in ("apiServer", "controllerManager", "scheduler"):
        c = dict(cc.get(comp) or {})
        c["extraArgs"] = _args(c.get("extraArgs"), f"{comp}.extraArgs", api)
        cc[comp] = c
    cc["apiServer"].setdefault("certSANs", [])
    cc["featureGates"] = cc.get("featureGates") or {}
    return cc


def load_init(path):
    docs = load_documents(path)
    ic = docs.get("InitConfiguration") or {"apiVersion": "kubeadm.k8s.io/v1beta4"}
    api = ic.get("apiVersion", "kubeadm.k8s.io/v1beta4")
    cfg = {
        "nodeRegistration": _node_registration(ic, api, True),
        "localAPIEndpoint": _endpoint(ic.get("localAPIEndpoint")),
        "timeouts": _timeouts(ic),
        "cluster": cluster_defaults(docs.get("ClusterConfiguration")),
        "kubelet": docs.get("KubeletConfiguration") or {},
        "skipPhases": ic.get("skipPhases") or [],
    }
    tokens = []
    for t in ic.get("bootstrapTokens") or [{}]:
        t = dict(t)
        t.setdefault("token", random_token())
        t.setdefault("ttl", "24h0m0s")
        t.setdefault("usages", ["signing", "authentication"])
        t.setdefault("groups", ["system:bootstrappers:kubeadm:default-node-token"])
        tokens.append(t)
    cfg["bootstrapTokens"] = tokens
    if not cfg["cluster"].get("kubernetesVersion"):
        raise ConfigError("the stand-in cannot look up \"stable-1\": set kubernetesVersion")
    return cfg


def load_join(path):
    docs = load_documents(path)
    jc = docs.get("JoinConfiguration")
    if jc is None:
        raise ConfigError(f"no JoinConfiguration found in {path}")
    api = jc.get("apiVersion", "kubeadm.k8s.io/v1beta4")
    cp = jc.get("controlPlane")
    cfg = {
        "nodeRegistration": _node_registration(jc, api, cp is not None),
        "caCertPath": jc.get("caCertPath") or "/etc/kubernetes/pki/ca.crt",
        "discovery": dict(jc.get("discovery") or {}),
        "controlPlane": None,
        "timeouts": _timeouts(jc),
        "kubelet": docs.get("KubeletConfiguration") or {},
    }
    if cp is not None:
        cfg["controlPlane"] = {"localAPIEndpoint": _endpoint((cp or {}).get("localAPIEndpoint")),
                               "certificateKey": (cp or {}).get("certificateKey", "")}
    bt = cfg["discovery"].get("bootstrapToken")
    if not bt or not bt.get("token") or not bt.get("apiServerEndpoint"):
        raise ConfigError("discovery.bootstrapToken (token, apiServerEndpoint) is required by the stand-in "
                          "(file discovery is not modelled)")
    if not bt.get("caCertHashes") and not bt.get("unsafeSkipCAVerification"):
        raise ConfigError("discovery.bootstrapToken: Invalid value: using token-based discovery without "
                          "caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm "
                          "config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue")
    return cfg


def control_plane_endpoint(cluster, local):
    """host:port kubeadm's kubeconfigs point at: controlPlaneEndpoint (its
    port defaulting to bindPort) or else the local advertise address."""
    cpe = cluster.get("controlPlaneEndpoint") or ""
    if not cpe:
        return f"{local['advertiseAddress']}:{local['bindPort']}"
    if cpe.startswith("["):
        return cpe if "]:" in cpe else f"{cpe}:{local['bindPort']}"
    return cpe if ":" in cpe else f"{cpe}:{local['bindPort']}"


def url(hostport):
    return f"https://{hostport}"


def local_url(ep):
    host = ep["advertiseAddress"]
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}:{ep['bindPort']}"


def exists(path):
    return os.path.exists(path)
