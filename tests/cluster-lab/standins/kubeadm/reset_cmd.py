"""`kubeadm reset [-f]` (cmd/kubeadm/app/cmd/phases/reset): remove-etcd-member
then cleanup-node.

remove-etcd-member runs only when /etc/kubernetes/manifests/etcd.yaml
exists, and can remove this node's member only when reset can read the
cluster's configuration: admin.conf present, the API answering through it,
kubeadm-config readable, this node's API endpoint found in its
kube-apiserver mirror Pod (node name from kubelet.conf's certificate), and
the cluster's etcd endpoints found in the etcd mirror Pods. Any of those
missing — e.g. a control-plane join that failed before its kubelet
bootstrapped or before its mirror Pods were posted — leaves the member in
etcd with reset's warning ("please manually remove this etcd member using
etcdctl"), as the real reset does.

cleanup-node stops the kubelet (its static Pods stop with it), then
deletes the contents of /etc/kubernetes/manifests, /var/lib/kubelet,
certificatesDir and the etcd data dir, and the kubeconfig files. Like the
real one it leaves CNI config, iptables and $HOME/.kube/config alone."""

import os
import shutil
import subprocess
import sys

import yaml

import apiclient
import etcd_member
import kubeconfig
import waits
from config import KUBERNETES_DIR, MANIFESTS_DIR, cluster_defaults


def _node_name():
    cfg = kubeconfig.load(os.path.join(KUBERNETES_DIR, "kubelet.conf"))
    user = cfg["users"][0]["user"]
    if "client-certificate-data" in user:
        import base64  # noqa: PLC0415
        pem = base64.b64decode(user["client-certificate-data"])
    else:
        with open(user["client-certificate"], "rb") as f:
            pem = f.read()
    out = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253"], input=pem,
                         capture_output=True).stdout.decode()
    cn = [p.split("=", 1)[1] for p in out.split("=", 1)[1].split(",") if p.strip().startswith("CN=")]
    return cn[0].removeprefix("system:node:")


def _cluster_config():
    """(client, ClusterConfiguration, localAPIEndpoint) or raises."""
    admin = os.path.join(KUBERNETES_DIR, "admin.conf")
    client = apiclient.Client.from_kubeconfig(kubeconfig.load(admin))
    cm = client.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    cluster = cluster_defaults(yaml.safe_load(cm["data"]["ClusterConfiguration"]))
    node = _node_name()
    pod = client.get(f"/api/v1/namespaces/kube-system/pods/kube-apiserver-{node}")
    ep = pod["metadata"]["annotations"]["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"]
    host, port = ep.rsplit(":", 1)
    return client, cluster, {"advertiseAddress": host.strip("[]"), "bindPort": int(port)}


def _etcd_data_dir():
    path = os.path.join(MANIFESTS_DIR, "etcd.yaml")
    with open(path, encoding="utf-8") as f:
        pod = yaml.safe_load(f)
    for arg in pod["spec"]["containers"][0]["command"]:
        if arg.startswith("--data-dir="):
            return arg.split("=", 1)[1]
    raise ValueError("no --data-dir in etcd.yaml")


def _empty(d):
    if not os.path.isdir(d):
        return
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            os.remove(p)


def run(force):
    print("[reset] Reading configuration from the cluster...")
    print("[reset] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o "
          "yaml'")
    client = cluster = local_ep = None
    if os.path.exists(os.path.join(KUBERNETES_DIR, "admin.conf")):
        try:
            client, cluster, local_ep = _cluster_config()
        except Exception as e:  # noqa: BLE001 - reset goes on without the cluster, as kubeadm does
            print(f"W0000 [reset] Unable to fetch the kubeadm-config ConfigMap from cluster: {e}", file=sys.stderr)
    if not force:
        print("[reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' will be reverted.")
        sys.stdout.write("[reset] Are you sure you want to proceed? [y/N]: ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() != "y":
            print("error execution phase preflight: won't proceed; the user didn't answer (Y|y) in order to "
                  "continue", file=sys.stderr)
            return 1
    print("[preflight] Running pre-flight checks")

    etcd_dir = None
    try:
        etcd_dir = _etcd_data_dir()
    except (OSError, ValueError, KeyError, TypeError):
        print("[reset] No etcd config found. Assuming external etcd")
        print("[reset] Please, manually reset etcd to prevent further issues")
    if etcd_dir and cluster is not None:
        try:
            etcd_member.remove_this_member(client, cluster["certificatesDir"], local_ep, 10)
        except Exception as e:  # noqa: BLE001
            print(f"W0000 [reset] Failed to remove etcd member: {e}, please manually remove this etcd member using "
                  f"etcdctl", file=sys.stderr)
    elif etcd_dir:
        print("W0000 [reset] Failed to remove etcd member: the kubeadm configuration of the cluster could not be "
              "read, please manually remove this etcd member using etcdctl", file=sys.stderr)

    print("[reset] Stopping the kubelet service")
    waits.stop_kubelet()
    print("[reset] Unmounting mounted directories in \"/var/lib/kubelet\"")
    cert_dir = (cluster or {}).get("certificatesDir", "/etc/kubernetes/pki")
    dirs = [MANIFESTS_DIR, "/var/lib/kubelet", cert_dir] + ([etcd_dir] if etcd_dir else [])
    print(f"[reset] Deleting contents of directories: {dirs}")
    for d in dirs:
        _empty(d)
    files = [os.path.join(KUBERNETES_DIR, f) for f in ("admin.conf", "super-admin.conf", "kubelet.conf",
                                                        "bootstrap-kubelet.conf", "controller-manager.conf",
                                                        "scheduler.conf")]
    print(f"[reset] Deleting files: {files}")
    for f in files:
        try:
            os.remove(f)
        except FileNotFoundError:
            pass
    print("\nThe reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d\n\n"
          "The reset process does not reset or clean up iptables rules or IPVS tables.\n\n"
          "The reset process does not clean your kubeconfig files and you must remove them manually.\n"
          "Please, check the contents of the $HOME/.kube/config file.")
    return 0
