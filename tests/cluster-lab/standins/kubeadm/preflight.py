"""kubeadm's preflight checks (cmd/kubeadm/app/preflight/checks*.go), each
under kubeadm's own check name so `--ignore-preflight-errors` and
`nodeRegistration.ignorePreflightErrors` work as with the real one, and
reported as `[ERROR Name]: message` / `[WARNING Name]: message`.

Checked: root; NumCPU (2) and Mem (1700 MB) on control planes; the
configured Kubernetes version against kubeadm's; ports (bindPort, 10257,
10259, 2379, 2380 on control planes; 10250 everywhere); the four static
Pod manifests and kubelet.conf / bootstrap-kubelet.conf not existing, the
etcd data dir empty, and on a worker join /etc/kubernetes/pki/ca.crt not
existing; the CRI answering on nodeRegistration.criSocket (real containerd,
CRI plugin loaded); swap (a warning, as in kubeadm 1.28+: it is the kubelet
that refuses swap); executables in PATH with kubeadm's mandatory/optional
split (conntrack and crictl only in the versions that check them, see
k8s_versions); cgroup controllers (SystemVerification); hostname resolving
(warning); kubelet version skew; kubelet.service enabled (warning);
net.ipv4.ip_forward = 1; bridge-nf-call-iptables = 1 only before 1.30;
HTTPS proxy variables (warning).

Not checked: the kernel config and OS parts of SystemVerification,
firewalld, image pulls (no registry in the lab), IPv6 forwarding."""

import os
import shutil
import socket
import subprocess
import sys

import cri
import k8s_versions as kv
from config import KUBERNETES_DIR, MANIFESTS_DIR
from out import say


class Check:
    def __init__(self, name, fn):
        self.name, self.fn = name, fn

    def run(self):
        """(warnings, errors) as lists of strings."""
        return self.fn()


def _file_available(path):
    name = "FileAvailable-" + path.replace("/", "-")
    return Check(name, lambda: ([], [f"{path} already exists"] if os.path.exists(path) else []))


def _dir_available(path):
    def fn():
        if os.path.isdir(path) and os.listdir(path):
            return [], [f"{path} is not empty"]
        return [], []
    return Check("DirAvailable-" + path.replace("/", "-"), fn)


def _file_content(path, content):
    def fn():
        try:
            with open(path, encoding="utf-8") as f:
                got = f.read(len(content))
        except OSError:
            return [], [f"{path} does not exist"]
        return ([], []) if got == content else ([], [f"{path} contents are not set to {content}"])
    return Check("FileContent-" + path.replace("/", "-"), fn)


def _port(port):
    def fn():
        s = socket.socket(socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET)
        # Go's net.Listen sets SO_REUSEADDR: connections in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
            return [], []
        except OSError:
            return [], [f"Port {port} is in use"]
        finally:
            s.close()
    return Check(f"Port-{port}", fn)


def _in_path(exe, mandatory):
    def fn():
        if shutil.which(exe):
            return [], []
        msg = f"{exe} not found in system path"
        return ([], [msg]) if mandatory else ([msg], [])
    return Check(f"FileExisting-{exe}", fn)


def _swap():
    def fn():
        try:
            with open("/proc/swaps", encoding="utf-8") as f:
                lines = [line for line in f.read().splitlines() if line.strip()]
        except OSError:
            return [], []
        if len(lines) > 1:
            return ["swap is supported for cgroup v2 only. The kubelet must be properly configured to use "
                    "swap. Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, "
                    "or disable swap on the node"], []
        return [], []
    return Check("Swap", fn)


def cgroup_controllers():
    """(version, set of available controllers) of this node's cgroup tree."""
    path = "/sys/fs/cgroup/cgroup.controllers"
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return 2, set(f.read().split())
    ctrls = set()
    with open("/proc/cgroups", encoding="utf-8") as f:
        for line in f:
            cols = line.split()
            if cols and not cols[0].startswith("#") and cols[-1] == "1":
                ctrls.add(cols[0])
    return 1, ctrls


def _system_verification(version, _fail_cgroup_v1=None):
    # k8s.io/system-validators (v1.12.1, kubernetes PR 134744) decides by the
    # kubelet version alone: from 1.35 cgroup v1 is an error even when the
    # KubeletConfiguration sets failCgroupV1: false; the operator must also
    # skip SystemVerification (its message says so).
    fail_cgroup_v1 = kv.kubelet_fails_on_cgroup_v1(version)

    def fn():
        warnings, errors = [], []
        cg, have = cgroup_controllers()
        need = {"cpu", "cpuset", "memory", "pids"} if cg == 2 else \
            {"cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"}
        missing = sorted(need - have)
        if missing:
            errors.append(f"missing required cgroups: {' '.join(missing)}")
        if cg == 1:
            msg = ("cgroups v1 support is in maintenance mode, please migrate to cgroups v2")
            if fail_cgroup_v1:
                errors.append("cgroups v1 support is deprecated and will be removed in a future release. Please "
                              "migrate to cgroups v2. To explicitly enable cgroups v1 support for kubelet v1.35 or "
                              "newer, you must set the kubelet configuration option 'FailCgroupV1' to 'false'. You must "
                              "also explicitly skip this validation.")
            else:
                warnings.append(msg)
        if errors:
            print("[preflight] The system verification failed. Printing the output from the verification:")
        return warnings, errors
    return Check("SystemVerification", fn)


def _hostname(name):
    def fn():
        try:
            socket.getaddrinfo(name, None)
            return [], []
        except OSError as e:
            return [f"hostname \"{name}\" could not be reached", f"hostname \"{name}\": lookup {name}: {e}"], []
    return Check("Hostname", fn)


def _kubelet_version(configured):
    def fn():
        try:
            out = subprocess.run(["kubelet", "--version"], capture_output=True, text=True).stdout
            v = kv.Version(out.split()[-1])
        except (OSError, IndexError, ValueError) as e:
            return [], [f"couldn't get kubelet version: {e}"]
        if configured is not None and (v.major, v.minor) > (configured.major, configured.minor):
            return [], ["the kubelet version is higher than the control plane version. This is not a supported "
                        f"version skew and may lead to a malfunctional cluster. Kubelet version: \"v{v}\" "
                        f"Control plane version: \"v{configured}\""]
        return [], []
    return Check("KubeletVersion", fn)


def systemctl():
    """systemctl, or the tests' stand-in for it (STANDIN_SYSTEMCTL)."""
    return os.environ.get("STANDIN_SYSTEMCTL", "systemctl")


def _kubelet_service():
    def fn():
        res = subprocess.run([systemctl(), "is-enabled", "kubelet"], capture_output=True, text=True)
        if res.returncode != 0:
            return ["kubelet service is not enabled, please run 'systemctl enable kubelet.service'"], []
        return [], []
    return Check("Service-Kubelet", fn)


def _cri(endpoint):
    def fn():
        err = cri.runtime_error(endpoint)
        return ([], [err]) if err else ([], [])
    return Check("CRI", fn)


def _kubernetes_version(configured, kubeadm):
    def fn():
        if (configured.major, configured.minor) > (kubeadm.major, kubeadm.minor):
            return [f"Kubernetes version is greater than kubeadm version. Please consider to upgrade kubeadm. "
                    f"Kubernetes version: {configured}. Kubeadm version: {kubeadm.major}.{kubeadm.minor}.x"], []
        return [], []
    return Check("KubernetesVersion", fn)


def _num_cpu():
    n = os.cpu_count() or 1
    return Check("NumCPU", lambda: ([], [] if n >= 2 else
                                    [f"the number of available CPUs {n} is less than the required 2"]))


def _mem():
    def fn():
        with open("/proc/meminfo", encoding="utf-8") as f:
            kb = int(f.readline().split()[1])
        mb = kb // 1024
        return [], [] if mb >= 1700 else [f"the system RAM ({mb} MB) is less than the minimum 1700 MB"]
    return Check("Mem", fn)


def _http_proxy(host):
    def fn():
        proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
        no_proxy = (os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "").split(",")
        if proxy and host not in no_proxy:
            return [f"Connection to \"https://{host}\" uses proxy \"{proxy}\". If that is not intended, "
                    "adjust your proxy settings"], []
        return [], []
    return Check("HTTPProxy", fn)


def _exec_checks(version, configured):
    checks = []
    if kv.conntrack_checked(version, configured):
        checks.append(_in_path("conntrack", True))
    if kv.crictl_checked(version):
        checks.append(_in_path("crictl", True))
    for exe in ("ip", "iptables", "mount", "nsenter"):
        checks.append(_in_path(exe, True))
    for exe in ("ebtables", "ethtool", "socat", "tc", "touch"):
        checks.append(_in_path(exe, False))
    return checks


def _common(version, configured, node_reg, kubelet_cfg):
    return [_cri(node_reg["criSocket"]), _swap(), *_exec_checks(version, configured),
            _system_verification(version, kubelet_cfg.get("failCgroupV1")), _hostname(node_reg["name"]),
            _kubelet_version(configured),
            _kubelet_service(), _port(10250)]


def _ipv4(version):
    checks = [_file_content("/proc/sys/net/ipv4/ip_forward", "1")]
    if kv.bridge_nf_checked(version):
        checks.insert(0, _file_content("/proc/sys/net/bridge/bridge-nf-call-iptables", "1"))
    return checks


def init_checks(version, configured, node_reg, local_ep, cluster, secondary, kubelet_cfg=None):
    """InitNodeChecks; `secondary` for the control-plane part of a join."""
    checks = [_num_cpu(), _mem()]
    if configured is not None:
        checks.append(_kubernetes_version(configured, version))
    checks += [_port(local_ep["bindPort"]), _port(10259), _port(10257)]
    checks += [_file_available(f"{MANIFESTS_DIR}/{c}.yaml")
               for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")]
    checks.append(_http_proxy(local_ep["advertiseAddress"]))
    if not secondary:
        checks += _common(version, configured, node_reg, kubelet_cfg or {})
        checks += _ipv4(version)
    if "local" in cluster["etcd"]:
        checks += [_port(2379), _port(2380), _dir_available(cluster["etcd"]["local"]["dataDir"])]
    return checks


def join_checks(version, cfg):
    checks = [_file_available(f"{KUBERNETES_DIR}/kubelet.conf"),
              _file_available(f"{KUBERNETES_DIR}/bootstrap-kubelet.conf")]
    checks += _common(version, None, cfg["nodeRegistration"], cfg["kubelet"])
    if cfg["controlPlane"] is None:
        checks.append(_file_available(cfg["caCertPath"]))
    host = cfg["discovery"]["bootstrapToken"]["apiServerEndpoint"].rsplit(":", 1)[0].strip("[]")
    checks.append(_http_proxy(host))
    checks += _ipv4(version)
    return checks


def run(checks, ignored):
    """Runs the checks; raises SystemExit-worthy PreflightFailed on errors."""
    errors = []
    ignore_all = "all" in ignored
    for c in checks:
        warnings, errs = c.run()
        if ignore_all or c.name.lower() in ignored:
            warnings, errs = warnings + errs, []
        for w in warnings:
            print(f"\t[WARNING {c.name}]: {w}", file=sys.stderr)
        errors += [f"\t[ERROR {c.name}]: {e}\n" for e in errs]
    if errors:
        sys.stderr.write("[preflight] Some fatal errors occurred:\n" + "".join(errors) +
                         "[preflight] If you know what you are doing, you can make a check non-fatal with "
                         "`--ignore-preflight-errors=...`\n")
        raise PreflightFailed()


class PreflightFailed(Exception):
    pass


def root_check(ignored):
    if os.geteuid() != 0 and "all" not in ignored and "isprivilegeduser" not in ignored:
        sys.stderr.write("[preflight] Some fatal errors occurred:\n\t[ERROR IsPrivilegedUser]: user is not "
                         "running as root\n")
        raise PreflightFailed()
    say("[preflight] Running pre-flight checks")
