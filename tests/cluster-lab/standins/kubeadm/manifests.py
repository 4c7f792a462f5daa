"""Static Pod manifests and kubelet files kubeadm writes, in the shape
kubeadm writes them (cmd/kubeadm/app/phases/{etcd,controlplane,kubelet}).

The stand-in kubelet runs these: etcd with the manifest's flags through
the real etcd binary, the API server stand-in with the kube-apiserver
flags. etcd's flags are the 3.4/3.5 spelling (the lab's etcd is Debian's
3.4; kubeadm 1.34+ writes some in etcd 3.6's spelling for its 3.6 image)."""

import os

import yaml

from config import KUBELET_DIR, MANIFESTS_DIR
from out import say

IMAGE_TAGS = {"etcd": "3.5.16-0"}


def _pod(name, component, command, annotations, priority=2000001000, probe_port=None, probe_path="/livez",
         probe_host="127.0.0.1"):
    container = {"name": name, "image": f"registry.k8s.io/{name}", "imagePullPolicy": "IfNotPresent",
                 "command": command, "resources": {"requests": {"cpu": "100m"}}}
    if probe_port:
        container["livenessProbe"] = {"httpGet": {"host": probe_host, "path": probe_path, "port": probe_port,
                                                  "scheme": "HTTPS"}, "failureThreshold": 8,
                                      "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 15}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"annotations": annotations, "labels": {"component": component, "tier": "control-plane"},
                         "name": name, "namespace": "kube-system"},
            "spec": {"containers": [container], "hostNetwork": True, "priority": priority,
                     "priorityClassName": "system-node-critical",
                     "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
            "status": {}}


def _flags(defaults, extra):
    merged = dict(defaults)
    merged.update(extra)
    return [f"--{k}={v}" for k, v in sorted(merged.items())]


def _write(name, pod, version):
    for c in pod["spec"]["containers"]:
        tag = IMAGE_TAGS.get(c["name"], f"v{version}")
        c["image"] = f"{c['image']}:{tag}"
    os.makedirs(MANIFESTS_DIR, exist_ok=True)
    path = os.path.join(MANIFESTS_DIR, f"{name}.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(pod, f, default_flow_style=False, sort_keys=False)
    os.chmod(path, 0o600)
    return path


def write_etcd(version, node, cluster, local_ep, initial_cluster, state):
    ip = local_ep["advertiseAddress"]
    pki_dir = cluster["certificatesDir"] + "/etcd"
    flags = {
        "advertise-client-urls": f"https://{ip}:2379",
        "cert-file": f"{pki_dir}/server.crt",
        "client-cert-auth": "true",
        "data-dir": cluster["etcd"]["local"]["dataDir"],
        "experimental-initial-corrupt-check": "true",
        "experimental-watch-progress-notify-interval": "5s",
        "initial-advertise-peer-urls": f"https://{ip}:2380",
        "initial-cluster": ",".join(f"{n}={u}" for n, u in initial_cluster),
        "key-file": f"{pki_dir}/server.key",
        "listen-client-urls": f"https://127.0.0.1:2379,https://{ip}:2379",
        "listen-metrics-urls": "http://127.0.0.1:2381",
        "listen-peer-urls": f"https://{ip}:2380",
        "name": node,
        "peer-cert-file": f"{pki_dir}/peer.crt",
        "peer-client-cert-auth": "true",
        "peer-key-file": f"{pki_dir}/peer.key",
        "peer-trusted-ca-file": f"{pki_dir}/ca.crt",
        "snapshot-count": "10000",
        "trusted-ca-file": f"{pki_dir}/ca.crt",
    }
    if state == "existing":
        flags["initial-cluster-state"] = "existing"
    pod = _pod("etcd", "etcd", ["etcd", *_flags(flags, dict(cluster["etcd"]["local"]["extraArgs"]))],
               {"kubeadm.kubernetes.io/etcd.advertise-client-urls": f"https://{ip}:2379"})
    path = _write("etcd", pod, version)
    say(f"[etcd] Creating static Pod manifest for local etcd in \"{MANIFESTS_DIR}\"")
    return path


def write_control_plane(version, cluster, local_ep):
    d = cluster["certificatesDir"]
    ip, port = local_ep["advertiseAddress"], local_ep["bindPort"]
    net = cluster["networking"]
    etcd_servers = "https://127.0.0.1:2379" if "local" in cluster["etcd"] else \
        ",".join(cluster["etcd"]["external"]["endpoints"])
    api = {
        "advertise-address": ip, "allow-privileged": "true", "authorization-mode": "Node,RBAC",
        "client-ca-file": f"{d}/ca.crt", "enable-admission-plugins": "NodeRestriction",
        "enable-bootstrap-token-auth": "true", "etcd-cafile": f"{d}/etcd/ca.crt",
        "etcd-certfile": f"{d}/apiserver-etcd-client.crt", "etcd-keyfile": f"{d}/apiserver-etcd-client.key",
        "etcd-servers": etcd_servers,
        "kubelet-client-certificate": f"{d}/apiserver-kubelet-client.crt",
        "kubelet-client-key": f"{d}/apiserver-kubelet-client.key",
        "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "proxy-client-cert-file": f"{d}/front-proxy-client.crt",
        "proxy-client-key-file": f"{d}/front-proxy-client.key",
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-client-ca-file": f"{d}/front-proxy-ca.crt",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-", "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User", "secure-port": str(port),
        "service-account-issuer": f"https://kubernetes.default.svc.{net['dnsDomain']}",
        "service-account-key-file": f"{d}/sa.pub", "service-account-signing-key-file": f"{d}/sa.key",
        "service-cluster-ip-range": net["serviceSubnet"],
        "tls-cert-file": f"{d}/apiserver.crt", "tls-private-key-file": f"{d}/apiserver.key",
    }
    pods = {
        "kube-apiserver": _pod("kube-apiserver", "kube-apiserver",
                               ["kube-apiserver", *_flags(api, dict(cluster["apiServer"]["extraArgs"]))],
                               {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": f"{ip}:{port}"},
                               probe_port=port, probe_host=ip),
        "kube-controller-manager": _pod("kube-controller-manager", "kube-controller-manager", [
            "kube-controller-manager", *_flags({
                "authentication-kubeconfig": "/etc/kubernetes/controller-manager.conf",
                "authorization-kubeconfig": "/etc/kubernetes/controller-manager.conf",
                "bind-address": "127.0.0.1", "client-ca-file": f"{d}/ca.crt",
                "cluster-name": cluster["clusterName"], "cluster-signing-cert-file": f"{d}/ca.crt",
                "cluster-signing-key-file": f"{d}/ca.key", "controllers": "*,bootstrapsigner,tokencleaner",
                "kubeconfig": "/etc/kubernetes/controller-manager.conf", "leader-elect": "true",
                "requestheader-client-ca-file": f"{d}/front-proxy-ca.crt",
                "root-ca-file": f"{d}/ca.crt", "service-account-private-key-file": f"{d}/sa.key",
                "use-service-account-credentials": "true"}, dict(cluster["controllerManager"]["extraArgs"]))],
            {}, probe_port=10257, probe_path="/healthz"),
        "kube-scheduler": _pod("kube-scheduler", "kube-scheduler", [
            "kube-scheduler", *_flags({
                "authentication-kubeconfig": "/etc/kubernetes/scheduler.conf",
                "authorization-kubeconfig": "/etc/kubernetes/scheduler.conf", "bind-address": "127.0.0.1",
                "kubeconfig": "/etc/kubernetes/scheduler.conf", "leader-elect": "true"},
                dict(cluster["scheduler"]["extraArgs"]))], {}, probe_port=10259),
    }
    say(f"[control-plane] Using manifest folder \"{MANIFESTS_DIR}\"")
    for name, pod in pods.items():
        say(f"[control-plane] Creating static Pod manifest for \"{name}\"")
        _write(name, pod, version)


def kubelet_configuration(cluster, overrides):
    """The KubeletConfiguration kubeadm writes to /var/lib/kubelet/config.yaml."""
    from certs import first_service_ip  # noqa: PLC0415 - avoids a cycle at import time
    svc = first_service_ip(cluster["networking"]["serviceSubnet"]).rsplit(".", 1)[0] + ".10"
    cfg = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"cacheTTL": "0s", "enabled": True},
                           "x509": {"clientCAFile": cluster["certificatesDir"] + "/ca.crt"}},
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "systemd", "clusterDNS": [svc], "clusterDomain": cluster["networking"]["dnsDomain"],
        "healthzBindAddress": "127.0.0.1", "healthzPort": 10248, "rotateCertificates": True,
        "staticPodPath": MANIFESTS_DIR,
    }
    cfg.update({k: v for k, v in overrides.items() if k not in ("apiVersion", "kind")})
    return cfg


def write_kubelet_files(kubelet_cfg, node_reg):
    os.makedirs(KUBELET_DIR, exist_ok=True)
    flags = [f"--container-runtime-endpoint={node_reg['criSocket']}"]
    flags += [f"--{k}={v}" for k, v in node_reg["kubeletExtraArgs"]]
    if node_reg["name"] != os.uname().nodename.lower():
        flags.append(f"--hostname-override={node_reg['name']}")
    env = os.path.join(KUBELET_DIR, "kubeadm-flags.env")
    with open(env, "w", encoding="utf-8") as f:
        f.write(f"KUBELET_KUBEADM_ARGS=\"{' '.join(flags)}\"\n")
    say(f"[kubelet-start] Writing kubelet environment file with flags to file \"{env}\"")
    path = os.path.join(KUBELET_DIR, "config.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(kubelet_cfg, f, default_flow_style=False)
    say(f"[kubelet-start] Writing kubelet configuration to file \"{path}\"")
