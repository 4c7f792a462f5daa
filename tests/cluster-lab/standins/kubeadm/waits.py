"""kubeadm's waits (cmd/kubeadm/app/util/apiclient/wait.go): the kubelet's
healthz, then the control plane — through admin.conf's server (the
controlPlaneEndpoint) before WaitForAllControlPlaneComponents, on each
component's local address after (k8s_versions)."""

import http.client
import os
import ssl
import subprocess

import apiclient
import k8s_versions as kv
import kubeconfig
from config import KUBERNETES_DIR, local_url
from out import PhaseError, human, poll, say


def restart_kubelet():
    ctl = os.environ.get("STANDIN_SYSTEMCTL", "systemctl")
    say("[kubelet-start] Starting the kubelet")
    res = subprocess.run([ctl, "restart", "kubelet"], capture_output=True, text=True)
    if res.returncode != 0:
        print(f"[kubelet-start] WARNING: unable to start the kubelet service: {res.stderr.strip()}")


def stop_kubelet():
    ctl = os.environ.get("STANDIN_SYSTEMCTL", "systemctl")
    subprocess.run([ctl, "stop", "kubelet"], capture_output=True)


def _kubelet_healthy():
    conn = http.client.HTTPConnection("127.0.0.1", 10248, timeout=5)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def wait_kubelet(phase, timeout):
    say(f"[{phase}] Waiting for a healthy kubelet at http://127.0.0.1:10248/healthz. "
        f"This can take up to {human(timeout)}")
    ok, err = poll(timeout, 1, _kubelet_healthy)
    if not ok:
        raise PhaseError(phase, f"The HTTP call equal to 'curl -sSL http://127.0.0.1:10248/healthz' returned "
                                f"error: {err}\nfailed while waiting for the kubelet to start: context deadline "
                                f"exceeded\n\nUnfortunately, an error has occurred, likely caused by:\n"
                                f"\t- The kubelet is not running\n\t- The kubelet is unhealthy due to a "
                                f"misconfiguration of the node in some way (required cgroups disabled)")
    say(f"[{phase}] The kubelet is healthy")


def _https_ok(host, port, path):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    finally:
        conn.close()


def wait_control_plane(phase, version, local_ep, timeout, components=True):
    if kv.waits_for_all_components(version):
        checks = [("kube-apiserver", local_ep["advertiseAddress"], local_ep["bindPort"], "/livez")]
        if components:
            checks += [("kube-controller-manager", "127.0.0.1", 10257, "/healthz"),
                       ("kube-scheduler", "127.0.0.1", 10259, "/livez")]
        say(f"[control-plane-check] Waiting for healthy control plane components. This can take up to "
            f"{human(timeout)}")
        for name, host, port, path in checks:
            say(f"[control-plane-check] Checking {name} at https://{host}:{port}{path}")
        for name, host, port, path in checks:
            ok, err = poll(timeout, 1, lambda h=host, p=port, q=path: _https_ok(h, p, q))
            if not ok:
                raise PhaseError(phase, f"failed while waiting for the control plane to start: {name} check "
                                        f"failed at https://{host}:{port}{path}: {err or 'not healthy'}")
            say(f"[control-plane-check] {name} is healthy")
        return
    # Before WaitForAllControlPlaneComponents: /healthz through admin.conf as
    # written, i.e. through controlPlaneEndpoint (ClientWithoutBootstrap).
    cfg = kubeconfig.load(os.path.join(KUBERNETES_DIR, "admin.conf"))
    client = apiclient.Client.from_kubeconfig(cfg)
    say(f"[api-check] Waiting for a healthy API server. This can take up to {human(timeout)}")
    ok, err = poll(timeout, 1, lambda: client.request("GET", "/healthz", raw=True)[0] == 200)
    if not ok:
        raise PhaseError(phase, f"failed while waiting for the control plane to start: the API server at "
                                f"{kubeconfig.server(cfg)} is not healthy after {human(timeout)}: {err}")
    say("[api-check] The API server is healthy after a while")


def local_server(local_ep):
    return local_url(local_ep)
