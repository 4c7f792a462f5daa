"""`kubeadm join --config FILE`, worker or control plane (`controlPlane:`).

Phases in kubeadm's order: preflight (node checks, token discovery,
reading kubeadm-config/kubelet-config with the token, for a control plane
the shared-PKI check and the control-plane checks), control-plane-prepare
(certs, kubeconfigs, manifests), kubelet-start (bootstrap-kubelet.conf,
kubelet config, restart; TLS bootstrap by the kubelet), control-plane-join
(etcd learner add, manifest, promote; mark-control-plane) and, where the
version has it, wait-control-plane. With ControlPlaneKubeletLocalMode the
control plane joins etcd before waiting for the kubelet's bootstrap."""

import os

import apiclient
import certs
import cluster_api
import discovery
import etcd_member
import k8s_versions as kv
import kubeconfig
import kubeconfigs
import manifests
import preflight
import waits
from config import KUBERNETES_DIR, cluster_defaults, load_join, local_url
from out import PhaseError, human, poll, say


def run(config_path, ignored):
    version = kv.own_version()
    cfg = load_join(config_path)
    node_reg, timeouts, cp = cfg["nodeRegistration"], cfg["timeouts"], cfg["controlPlane"]
    node = node_reg["name"]
    ignored = set(ignored) | set(node_reg["ignorePreflightErrors"])
    bt = cfg["discovery"]["bootstrapToken"]

    preflight.root_check(ignored)
    preflight.run(preflight.join_checks(version, cfg), ignored)
    try:
        info = discovery.discover(bt, timeouts["discovery"])
    except discovery.DiscoveryError as e:
        raise PhaseError("preflight", f"couldn't validate the identity of the API Server: {e}") from e
    server = kubeconfig.server(info)
    ca = kubeconfig.ca_pem(info)
    token_client = apiclient.Client.from_kubeconfig(
        kubeconfig.build(server, ca, "tls-bootstrap-token-user", token=bt["token"]))
    say("[preflight] Reading configuration from the cluster...")
    say("[preflight] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o "
        "yaml'")
    try:
        cluster_doc, kubelet_cfg = cluster_api.fetch_cluster_configuration(token_client)
    except (apiclient.APIError, apiclient.Unreachable, KeyError) as e:
        raise PhaseError("preflight", f"unable to fetch the kubeadm-config ConfigMap: {e}") from e
    cluster = cluster_defaults(cluster_doc)
    kubelet_cfg.update({k: v for k, v in cfg["kubelet"].items() if k not in ("apiVersion", "kind")})

    if cp:
        local_ep = cp["localAPIEndpoint"]
        problems = []
        if not cluster.get("controlPlaneEndpoint"):
            problems.append("unable to add a new control plane instance to a cluster that doesn't have a stable "
                            "controlPlaneEndpoint address")
        if not cp.get("certificateKey"):
            problems += certs.shared_certificate_errors(cluster["certificatesDir"], "local" in cluster["etcd"])
        if problems:
            raise PhaseError("preflight", "\none or more conditions for hosting a new control plane instance is "
                             "not satisfied.\n\n" + "\n".join(problems) + "\n\nPlease ensure that:\n* The cluster "
                             "has a stable controlPlaneEndpoint address.\n* The certificates that must be shared "
                             "among control plane instances are provided.\n")
        say("[preflight] Running pre-flight checks before initializing the new control plane instance")
        preflight.run(preflight.init_checks(version, None, node_reg, local_ep, cluster, True), ignored)
        try:
            say(f"[certs] Using certificateDir folder \"{cluster['certificatesDir']}\"")
            certs.issue_node_certs(version, node, cluster, local_ep)
            kubeconfigs.write_all(version, cluster, local_ep, node, init=False)
        except (certs.CertError, kubeconfigs.KubeconfigError, OSError) as e:
            raise PhaseError("control-plane-prepare", str(e)) from e
        manifests.write_control_plane(version, cluster, local_ep)

    local_mode = cp is not None and kv.kubelet_local_mode(version)
    bootstrap_server = local_url(cp["localAPIEndpoint"]) if local_mode else server
    waits.stop_kubelet()
    kubeconfig.write(os.path.join(KUBERNETES_DIR, "bootstrap-kubelet.conf"),
                     kubeconfig.build(bootstrap_server, ca, "tls-bootstrap-token-user", token=bt["token"]))
    manifests.write_kubelet_files(kubelet_cfg, node_reg)
    waits.restart_kubelet()
    if not local_mode:
        _wait_bootstrap("kubelet-start", timeouts)

    if cp:
        admin = apiclient.Client.from_kubeconfig(kubeconfig.load(os.path.join(KUBERNETES_DIR, "admin.conf")))
        _join_etcd(version, node, cluster, cp["localAPIEndpoint"], admin, timeouts)
        if local_mode:
            _wait_bootstrap("kubelet-wait-bootstrap", timeouts)
        try:
            cluster_api.mark_control_plane("control-plane-join", admin, node, node_reg["taints"],
                                           timeouts["kubernetesAPICall"])
        except PhaseError:
            raise
        except Exception as e:  # noqa: BLE001
            raise PhaseError("control-plane-join/mark-control-plane", str(e)) from e
        if kv.waits_for_all_components(version):
            waits.wait_control_plane("wait-control-plane", version, cp["localAPIEndpoint"],
                                     timeouts["controlPlaneComponentHealthCheck"])
        say("\nThis node has joined the cluster and a new control plane instance was created:\n\n"
            "* Certificate signing request was sent to apiserver and approval was received.\n"
            "* The Kubelet was informed of the new secure connection details.\n"
            "* Control plane label and taint were applied to the new node.\n"
            "* The Kubernetes control plane instances scaled up.\n* A new etcd member was added to the local/stacked "
            "etcd cluster.\n")
    else:
        say("\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response "
            "was received.\n* The Kubelet was informed of the new secure connection details.\n")


def _wait_bootstrap(phase, timeouts):
    waits.wait_kubelet(phase, timeouts["kubeletHealthCheck"])
    say(f"[{phase}] Waiting for the kubelet to perform the TLS Bootstrap")
    path = os.path.join(KUBERNETES_DIR, "kubelet.conf")
    ok, _ = poll(timeouts["tlsBootstrap"], 1, lambda: os.path.exists(path))
    if not ok:
        raise PhaseError(phase, f"timed out waiting for the condition: the kubelet did not write {path} within "
                                f"{human(timeouts['tlsBootstrap'])} (TLS bootstrap failed)")
    try:
        os.remove(os.path.join(KUBERNETES_DIR, "bootstrap-kubelet.conf"))
    except FileNotFoundError:
        pass


def _join_etcd(version, node, cluster, local_ep, admin, timeouts):
    phase = "control-plane-join-etcd" if kv.kubelet_local_mode(version) else "control-plane-join/etcd"
    ip = local_ep["advertiseAddress"]
    peer = f"https://{ip}:2380"
    try:
        etcd = etcd_member.from_cluster(admin, cluster["certificatesDir"], timeouts["kubernetesAPICall"])
        members = etcd_member.add_learner(etcd, node, peer, timeouts["etcdAPICall"])
    except Exception as e:  # noqa: BLE001 - etcd and API errors end the phase with their message
        raise PhaseError(phase, f"error creating local etcd static pod manifest file: {e}") from e
    say("[etcd] Using etcd pod spec to get a list of the etcd members")
    manifests.write_etcd(version, node, cluster, local_ep, members, "existing")
    say(f"[etcd] Waiting for the new etcd member to join the cluster. This can take up to "
        f"{human(timeouts['etcdAPICall'])}")
    try:
        etcd_member.promote(etcd, peer, timeouts["etcdAPICall"])
        etcd_member.wait_available(etcd, timeouts["etcdAPICall"])
    except Exception as e:  # noqa: BLE001
        raise PhaseError(phase, str(e)) from e
