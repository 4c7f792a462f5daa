"""Which behaviour of the real Kubernetes tools each version has.

Every version-dependent decision of the stand-ins is made here, from the
package version the stand-in was built as (`VERSION` beside this file), so
the table is the one place to read and to fix. Sources (kubernetes/kubernetes
unless named):

- conntrack in PATH (preflight, mandatory): unconditional before 1.32;
  PR 126953 (1.32) keeps it only when the *configured* Kubernetes version is
  < 1.32, and `join` passes an empty version, so 1.32+ never checks it.
- bridge-nf-call-iptables (preflight): removed by PR 123464 (1.30).
- crictl in PATH (preflight, mandatory): dropped in 1.31 (kubeadm talks CRI).
- super-admin.conf (system:masters) beside admin.conf (kubeadm:cluster-admins):
  1.29+.
- WaitForAllControlPlaneComponents: alpha/off 1.30-1.32, beta/on 1.33, GA
  1.34, removed (always on) 1.35. Off: wait-control-plane asks `/healthz`
  through admin.conf, i.e. through controlPlaneEndpoint. On: every
  component on its local address (apiserver advertiseAddress:bindPort/livez,
  controller-manager 127.0.0.1:10257/healthz, scheduler 127.0.0.1:10259/livez).
- ControlPlaneKubeletLocalMode: alpha/off 1.31-1.32, beta/on 1.33-1.34, GA
  1.35, removed (always on) 1.36. On: a control plane's kubelet.conf points at
  its own API server, and `join --control-plane` joins etcd before waiting
  for the kubelet's TLS bootstrap.
- The client of init's later phases (upload-config, mark-control-plane,
  bootstrap-token...): admin.conf/super-admin.conf as written, i.e. through
  controlPlaneEndpoint, until PR 138449 ("use the localAPIEndpoint for all
  API calls in 'init'"), merged for 1.37 and cherry-picked to 1.36, 1.35 and
  1.34 (PRs 138682/138683/138685, merged 2026-05-05). The first patch
  releases carrying it are not in the stored changelogs; the table below
  takes the first patch after that date and can be overridden with
  KUBEADM_STANDIN_INIT_LOCAL_CLIENT=0|1.
- kubelet failCgroupV1 defaults to true (refuses cgroup v1 hosts): 1.35+.
- kubelet takes the cgroup driver from the CRI (KubeletCgroupDriverFromCRI,
  on since 1.31) when the runtime reports one: containerd 2.x does, 1.x
  does not (then the KubeletConfiguration's cgroupDriver is used).
- Packages (kubernetes/release krel templates): kubeadm 1.30-1.31 depends on
  cri-tools (>= 1.30.0), 1.32+ on nothing; kubelet depends on
  kubernetes-cni (>= 1.2.0), mount, util-linux and (packages of 1.31.14 and
  later) no longer on conntrack, ethtool or iproute2.
"""

import os
import re

_HERE = os.path.dirname(os.path.abspath(__file__))

# (minor, first patch with PR 138449) for the release branches that got it.
_INIT_LOCAL_CLIENT_FIRST_PATCH = {34: 9, 35: 5, 36: 1}


class Version:
    """A Kubernetes version such as 1.31.9 (a leading v and -suffix allowed)."""

    def __init__(self, text):
        m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
        if not m:
            raise ValueError(f"not a Kubernetes version: {text!r}")
        self.major, self.minor = int(m.group(1)), int(m.group(2))
        self.patch = int(m.group(3) or 0)
        self.text = f"{self.major}.{self.minor}.{self.patch}"

    def tuple(self):
        return (self.major, self.minor, self.patch)

    def __lt__(self, other):
        return self.tuple() < Version(str(other)).tuple()

    def __ge__(self, other):
        return not self < other

    def __str__(self):
        return self.text


def own_version():
    """The version this stand-in package was built as."""
    with open(os.path.join(_HERE, "VERSION"), encoding="utf-8") as f:
        return Version(f.read())


def conntrack_checked(kubeadm, configured=None):
    if kubeadm < "1.32.0":
        return True
    return configured is not None and configured < "1.32.0"


def bridge_nf_checked(v):
    return v < "1.30.0"


def crictl_checked(v):
    return v < "1.31.0"


def has_super_admin(v):
    return v >= "1.29.0"


def waits_for_all_components(v):
    return v >= "1.33.0"


def kubelet_local_mode(v):
    return v >= "1.33.0"


def init_client_uses_local_endpoint(v):
    forced = os.environ.get("KUBEADM_STANDIN_INIT_LOCAL_CLIENT")
    if forced in ("0", "1"):
        return forced == "1"
    if v >= "1.37.0":
        return True
    first = _INIT_LOCAL_CLIENT_FIRST_PATCH.get(v.minor)
    return v.major == 1 and first is not None and v.patch >= first


def kubelet_fails_on_cgroup_v1(v):
    return v >= "1.35.0"
