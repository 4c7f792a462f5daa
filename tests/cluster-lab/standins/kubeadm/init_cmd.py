"""`kubeadm init --config FILE`: kubeadm's init phases in kubeadm's order —
preflight, certs, kubeconfig, etcd, control-plane, kubelet-start,
wait-control-plane, upload-config, upload-certs (skipped: no
--upload-certs), mark-control-plane, bootstrap-token, kubelet-finalize
(nothing to do), addon — each failing as `error execution phase <name>`
and leaving what earlier phases made, like the real one."""

import os

import yaml

import certs
import cluster_api
import k8s_versions as kv
import kubeconfigs
import manifests
import preflight
import waits
from config import KUBERNETES_DIR, load_init
from out import PhaseError, say


def run(config_path, ignored):
    version = kv.own_version()
    cfg = load_init(config_path)
    cluster = cfg["cluster"]
    node_reg, local_ep, timeouts = cfg["nodeRegistration"], cfg["localAPIEndpoint"], cfg["timeouts"]
    node = node_reg["name"]
    configured = kv.Version(cluster["kubernetesVersion"])
    ignored = set(ignored) | set(node_reg["ignorePreflightErrors"])
    say(f"[init] Using Kubernetes version: v{configured}")

    preflight.root_check(ignored)
    preflight.run(preflight.init_checks(version, configured, node_reg, local_ep, cluster, False, cfg["kubelet"]), ignored)
    say("[preflight] Pulling images required for setting up a Kubernetes cluster")
    say("[preflight] This might take a minute or two, depending on the speed of your internet connection")

    try:
        say(f"[certs] Using certificateDir folder \"{cluster['certificatesDir']}\"")
        certs.require_cas(cluster["certificatesDir"])
        certs.issue_node_certs(version, node, cluster, local_ep)
    except (certs.CertError, OSError) as e:
        raise PhaseError("certs", str(e)) from e
    try:
        kubeconfigs.write_all(version, cluster, local_ep, node, init=True)
    except (kubeconfigs.KubeconfigError, OSError) as e:
        raise PhaseError("kubeconfig", str(e)) from e
    ip = local_ep["advertiseAddress"]
    manifests.write_etcd(version, node, cluster, local_ep, [(node, f"https://{ip}:2380")], "new")
    manifests.write_control_plane(version, cluster, local_ep)

    waits.stop_kubelet()
    kubelet_cfg = manifests.kubelet_configuration(cluster, cfg["kubelet"])
    manifests.write_kubelet_files(kubelet_cfg, node_reg)
    waits.restart_kubelet()

    say("[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from "
        "directory \"/etc/kubernetes/manifests\"")
    waits.wait_kubelet("wait-control-plane", timeouts["kubeletHealthCheck"])
    waits.wait_control_plane("wait-control-plane", version, local_ep, timeouts["controlPlaneComponentHealthCheck"])

    client = cluster_api.init_client("upload-config", version, local_ep, timeouts["kubernetesAPICall"])
    stored = {k: v for k, v in cluster.items()}
    try:
        cluster_api.upload_config(client, _cluster_document(stored), kubelet_cfg)
    except Exception as e:  # noqa: BLE001 - every API failure ends the phase
        raise PhaseError("upload-config/kubeadm", str(e)) from e
    say("[upload-certs] Skipping phase. Please see --upload-certs")
    try:
        cluster_api.mark_control_plane("mark-control-plane", client, node, node_reg["taints"],
                                       timeouts["kubernetesAPICall"])
    except PhaseError:
        raise
    except Exception as e:  # noqa: BLE001
        raise PhaseError("mark-control-plane", str(e)) from e
    try:
        say(f"[bootstrap-token] Using token: {cfg['bootstrapTokens'][0]['token']}")
        cluster_api.bootstrap_tokens(client, cfg["bootstrapTokens"], os.path.join(KUBERNETES_DIR, "admin.conf"),
                                     os.path.join(cluster["certificatesDir"], "ca.crt"))
    except Exception as e:  # noqa: BLE001
        raise PhaseError("bootstrap-token", str(e)) from e
    try:
        cluster_api.addons(client, cluster, version)
    except Exception as e:  # noqa: BLE001
        raise PhaseError("addon", str(e)) from e
    say("\nYour Kubernetes control-plane has initialized successfully!\n")
    say("To start using your cluster, you need to run the following as a regular user:\n\n"
        "  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n"
        "  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n")


def _cluster_document(cluster):
    """ClusterConfiguration as uploaded (v1beta4 extraArgs lists)."""
    doc = yaml.safe_load(yaml.safe_dump(cluster))
    doc["apiVersion"], doc["kind"] = "kubeadm.k8s.io/v1beta4", "ClusterConfiguration"
    for comp in ("apiServer", "controllerManager", "scheduler"):
        doc[comp]["extraArgs"] = [{"name": n, "value": v} for n, v in doc[comp]["extraArgs"]]
    if "local" in doc["etcd"]:
        doc["etcd"]["local"]["extraArgs"] = [{"name": n, "value": v} for n, v in doc["etcd"]["local"]["extraArgs"]]
    return doc
