"""kubelet stand-in (run by kubelet.service with kubeadm's drop-in flags).

At start, like the real kubelet, it refuses to run (exit 1, so systemd
restarts it every 10 s) when: --config is missing or unreadable (the
normal state before kubeadm init/join); swap is on and failSwapOn is not
false; the host is on cgroup v1 and failCgroupV1 is true (its default from
1.35); the CRI does not answer on --container-runtime-endpoint.

The cgroup driver: with containerd 2.x the kubelet takes the runtime's
driver (KubeletCgroupDriverFromCRI); with containerd 1.x it uses the
config's cgroupDriver, and when that differs from containerd's the static
Pods cannot start (the real kubelet's sandboxes fail to be created) — the
error is logged on every sync and nothing runs.

Then it serves healthz on healthzBindAddress:healthzPort (10248) and holds
port 10250, runs the static Pods (static_pods), performs the TLS bootstrap
when it has only bootstrap-kubelet.conf (tls_bootstrap), and with a
kubeconfig registers the Node, posts its status and mirror Pods
(node_status). Not modelled: running any Pod that is not static."""

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import yaml

import apiclient
import cri
import k8s_versions as kv
import kubeconfig
import tls_bootstrap
from node_status import NodeStatus
from static_pods import StaticPods


def log(msg, level="I"):
    print(f"{level}{time.strftime('%m%d %H:%M:%S')} kubelet: {msg}", file=sys.stderr, flush=True)


def fail(msg):
    log(msg, "E")
    sys.exit(1)


class Healthz(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def _serve_healthz(addr, port):
    srv = HTTPServer((addr, port), Healthz)
    threading.Thread(target=srv.serve_forever, daemon=True).start()


def _hold_port(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)

    def accept():
        while True:
            conn, _ = s.accept()
            conn.close()
    threading.Thread(target=accept, daemon=True).start()


def _swap_on():
    try:
        with open("/proc/swaps", encoding="utf-8") as f:
            return len([line for line in f if line.strip()]) > 1
    except OSError:
        return False


def _cgroup_v1():
    return not os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _default_ip():
    res = subprocess.run(["ip", "-4", "route", "get", "192.0.2.1"], capture_output=True, text=True)
    words = res.stdout.split()
    return words[words.index("src") + 1] if "src" in words else "127.0.0.1"


def main(argv):
    version = kv.own_version()
    p = argparse.ArgumentParser(prog="kubelet")
    p.add_argument("--version", action="store_true")
    for flag in ("config", "kubeconfig", "bootstrap-kubeconfig", "container-runtime-endpoint", "node-ip",
                 "hostname-override"):
        p.add_argument(f"--{flag}")
    args, _ = p.parse_known_args(argv)
    if args.version:
        print(f"Kubernetes v{version}")
        return 0
    if not args.config:
        fail("the stand-in needs --config (kubeadm's drop-in passes it)")
    try:
        with open(args.config, encoding="utf-8") as f:
            cfg = yaml.safe_load(f) or {}
    except OSError as e:
        fail(f"\"command failed\" err=\"failed to load kubelet config file, path: {args.config}, error: failed to "
             f"load Kubelet config file {args.config}, error failed to read kubelet config file \"{args.config}\", "
             f"error: {e}\"")
    if cfg.get("failSwapOn", True) and _swap_on():
        fail("\"command failed\" err=\"failed to run Kubelet: running with swap on is not supported, please "
             "disable swap or set --fail-swap-on flag to false\"")
    if _cgroup_v1() and cfg.get("failCgroupV1", kv.kubelet_fails_on_cgroup_v1(version)):
        fail("\"command failed\" err=\"failed to run Kubelet: kubelet is configured to not run on a host using "
             "cgroup v1. cgroup v1 support is unsupported and will be removed in a future release\"")
    endpoint = args.container_runtime_endpoint or cfg.get("containerRuntimeEndpoint") or \
        "unix:///run/containerd/containerd.sock"
    err = cri.runtime_error(endpoint)
    if err:
        fail(f"\"command failed\" err=\"failed to run Kubelet: validate service connection: {err}\"")
    major = cri.major_version(endpoint)
    runtime_driver = cri.cgroup_driver()
    driver = cfg.get("cgroupDriver", "cgroupfs")
    blocked = None
    if major is not None and major >= 2:
        if driver != runtime_driver:
            log(f"Using cgroup driver setting received from the CRI runtime: {runtime_driver} (config: {driver})")
        driver = runtime_driver
    elif driver != runtime_driver:
        blocked = (f"failed to create pod sandbox: the kubelet's cgroup driver \"{driver}\" differs from the "
                   f"container runtime's \"{runtime_driver}\" (SystemdCgroup in /etc/containerd/config.toml)")
        log(blocked, "E")

    node = (args.hostname_override or socket.gethostname()).lower()
    _serve_healthz(cfg.get("healthzBindAddress", "127.0.0.1"), int(cfg.get("healthzPort", 10248)))
    _hold_port(10250)
    pods = StaticPods(cfg.get("staticPodPath", "/etc/kubernetes/manifests"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    kcfg = args.kubeconfig or "/etc/kubernetes/kubelet.conf"
    if not os.path.exists(kcfg) and args.bootstrap_kubeconfig and os.path.exists(args.bootstrap_kubeconfig):
        def boot():
            while not stop.is_set():
                try:
                    tls_bootstrap.bootstrap(args.bootstrap_kubeconfig, kcfg, node, log)
                    return
                except Exception as e:  # noqa: BLE001 - the real kubelet retries every failure
                    log(f"TLS bootstrap failed, retrying: {e}", "E")
                    stop.wait(5)
        threading.Thread(target=boot, daemon=True).start()

    status = None
    runtime = f"containerd://{major or 'unknown'}"
    log(f"kubelet stand-in v{version} started (cgroup driver {driver}, node {node})")
    while not stop.is_set():
        pods.sync(blocked)
        if status is None and os.path.exists(kcfg):
            try:
                client = apiclient.Client.from_kubeconfig(kubeconfig.load(kcfg))
                status = NodeStatus(client, node, args.node_ip or _default_ip(), version, runtime, log)
            except (OSError, ValueError, KeyError) as e:
                log(f"cannot use {kcfg}: {e}", "E")
        if status is not None:
            status.sync(list(pods.pods.values()))
        stop.wait(1)
    pods.stop_all()
    return 0
