"""Static Pods from the kubelet's staticPodPath, run as child processes in
place of containers: etcd as the real etcd binary (/usr/bin/etcd, Debian's
etcd-server standing in for the etcd image) with the manifest's command
line, kube-apiserver as the API server stand-in, kube-controller-manager
and kube-scheduler as health stand-ins. Dead processes are restarted with
CrashLoopBackOff's delays (10 s doubling to 5 min, reset after 10 min up);
a changed manifest restarts its Pod, a removed one stops it. Output goes
to /var/log/pods/<namespace>_<pod>/<container>.log.

Differences from the real kubelet: no container runtime is used (images,
probes, resources, volumes and security contexts are ignored), and the
processes stop with the kubelet, where real containers keep running."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = {
    "etcd": lambda: [os.environ.get("STANDIN_ETCD_BINARY", "/usr/bin/etcd")],
    "kube-apiserver": lambda: [os.path.join(HERE, "kube-apiserver")],
    "kube-controller-manager": lambda: [os.path.join(HERE, "component-stub"), "kube-controller-manager"],
    "kube-scheduler": lambda: [os.path.join(HERE, "component-stub"), "kube-scheduler"],
}


def log(msg):
    print(f"I{time.strftime('%m%d %H:%M:%S')} static_pods: {msg}", file=sys.stderr, flush=True)


class Pod:
    def __init__(self, path, raw):
        self.path, self.raw = path, raw
        self.hash = hashlib.sha256(raw).hexdigest()[:16]
        self.spec = yaml.safe_load(raw)
        self.name = self.spec["metadata"]["name"]
        self.namespace = self.spec["metadata"].get("namespace", "default")
        self.container = self.spec["spec"]["containers"][0]
        self.proc = None
        self.restarts = 0
        self.backoff = 0.0
        self.next_start = 0.0
        self.started_at = 0.0
        self.last_error = ""

    def command(self):
        cmd = list(self.container.get("command") or []) + list(self.container.get("args") or [])
        prog = PROGRAMS.get(os.path.basename(cmd[0])) if cmd else None
        if prog is None:
            return None
        return prog() + cmd[1:]

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        cmd = self.command()
        if cmd is None:
            self.last_error = f"image {self.container.get('image')} is not available in the lab"
            return
        logdir = f"/var/log/pods/{self.namespace}_{self.name}"
        os.makedirs(logdir, exist_ok=True)
        out = open(os.path.join(logdir, f"{self.container['name']}.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        self.started_at = time.monotonic()
        log(f"started {self.name} (pid {self.proc.pid})")

    def stop(self):
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            log(f"stopped {self.name}")
        self.proc = None

    def tick(self, blocked):
        now = time.monotonic()
        if blocked:
            self.last_error = blocked
            return
        if self.running():
            if now - self.started_at > 600:
                self.backoff = 0.0
            return
        if self.proc is not None:
            self.last_error = f"container {self.container['name']} exited with code {self.proc.returncode}"
            self.restarts += 1
            self.backoff = min(300.0, self.backoff * 2 or 10.0)
            self.next_start = now + self.backoff
            log(f"{self.name}: {self.last_error}; back-off {self.backoff:.0f}s restarting failed container")
            self.proc = None
        if now >= self.next_start:
            self.start()


class StaticPods:
    def __init__(self, directory):
        self.dir = directory
        self.pods = {}

    def sync(self, blocked=None):
        """One pass: start, restart, replace and stop Pods to match the files."""
        seen = {}
        if os.path.isdir(self.dir):
            for f in sorted(os.listdir(self.dir)):
                if f.startswith(".") or not f.endswith((".yaml", ".yml", ".json")):
                    continue
                path = os.path.join(self.dir, f)
                try:
                    with open(path, "rb") as fh:
                        seen[path] = fh.read()
                except OSError:
                    continue
        for path in list(self.pods):
            if path not in seen or self.pods[path].raw != seen[path]:
                self.pods.pop(path).stop()
        for path, raw in seen.items():
            if path not in self.pods:
                try:
                    self.pods[path] = Pod(path, raw)
                except (yaml.YAMLError, KeyError, TypeError, IndexError) as e:
                    log(f"invalid static pod manifest {path}: {e}")
                    continue
            self.pods[path].tick(blocked)

    def stop_all(self):
        for pod in self.pods.values():
            pod.stop()
