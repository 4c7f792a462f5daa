"""What kubeadm and the kubelet learn from containerd, asked of the real
containerd: whether its CRI plugin answers on the socket (`ctr plugins ls`,
the CRI plugin must be loaded, not just the daemon up), its version, and
the cgroup driver its runc runtime uses (`SystemdCgroup` in the effective
config from `containerd config dump`, config version 2 and 3 layouts).

Not checked: the CRI gRPC API itself (no gRPC client in the stdlib)."""

import re
import subprocess
import tomllib


def socket_path(endpoint):
    return endpoint[len("unix://"):] if endpoint.startswith("unix://") else endpoint


def _ctr(endpoint, *args):
    try:
        return subprocess.run(["ctr", "--address", socket_path(endpoint), *args],
                              capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as e:
        return subprocess.CompletedProcess(args, 1, "", str(e))


def runtime_error(endpoint):
    """None when containerd's CRI plugin answers on endpoint, else the error."""
    res = _ctr(endpoint, "plugins", "ls")
    if res.returncode != 0:
        return (f"container runtime is not running: output: {res.stderr.strip()}, "
                f"error: validate service connection: validate CRI v1 runtime API for "
                f"endpoint \"{endpoint}\": rpc error: code = Unavailable")
    for line in res.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 3 and cols[0] == "io.containerd.grpc.v1" and cols[1] == "cri":
            if cols[-1] == "ok":
                return None
            return (f"container runtime is not running: validate CRI v1 runtime API for endpoint "
                    f"\"{endpoint}\": rpc error: code = Unimplemented desc = unknown service "
                    f"runtime.v1.RuntimeService (CRI plugin status: {cols[-1]})")
    return (f"container runtime is not running: validate CRI v1 runtime API for endpoint "
            f"\"{endpoint}\": rpc error: code = Unimplemented desc = unknown service "
            f"runtime.v1.RuntimeService (CRI plugin disabled)")


def major_version(endpoint):
    res = _ctr(endpoint, "version")
    m = re.search(r"Server:\s*\n\s*Version:\s*v?(\d+)", res.stdout)
    return int(m.group(1)) if m else None


def _effective_config():
    res = subprocess.run(["containerd", "config", "dump"], capture_output=True, text=True)
    if res.returncode == 0:
        return tomllib.loads(res.stdout)
    with open("/etc/containerd/config.toml", "rb") as f:
        return tomllib.load(f)


def cgroup_driver():
    """'systemd' or 'cgroupfs': what containerd's default runc runtime uses."""
    cfg = _effective_config()
    plugins = cfg.get("plugins", {})
    # v3 (containerd 2.x) moved the runtimes; v2 and the unversioned v1 keep them here.
    for name in ("io.containerd.cri.v1.runtime", "io.containerd.grpc.v1.cri", "cri"):
        cri = plugins.get(name)
        if not cri or "containerd" not in cri:
            continue
        ctd = cri["containerd"]
        runtime = ctd.get("runtimes", {}).get(ctd.get("default_runtime_name", "runc"), {})
        systemd = runtime.get("options", {}).get("SystemdCgroup", False)
        return "systemd" if systemd else "cgroupfs"
    return "cgroupfs"
