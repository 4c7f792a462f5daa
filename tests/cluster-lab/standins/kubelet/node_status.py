"""The kubelet's API-server side: register the Node once (labels,
addresses, node info), then every 10 s post its status — Ready only when a
CNI network config exists in /etc/cni/net.d, NotReady with the real
kubelet's NetworkPluginNotReady reason otherwise — and keep a mirror Pod in
kube-system for each static Pod (name <pod>-<node>, the manifest's labels
and annotations, phase Running while its process runs). kubeadm's reset
and control-plane join find the etcd members and this node's API endpoint
through these mirror Pods, as with the real kubelet."""

import glob
import time

import apiclient

CNI_DIR = "/etc/cni/net.d"


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class NodeStatus:
    def __init__(self, client, node, node_ip, version, runtime, log):
        self.client, self.node, self.ip = client, node, node_ip
        self.version, self.runtime, self.log = version, runtime, log
        self.registered = False
        self.last_status = 0.0

    def _conditions(self):
        cni = [f for f in glob.glob(f"{CNI_DIR}/*") if f.endswith((".conf", ".conflist", ".json"))]
        ready = {"type": "Ready", "lastHeartbeatTime": _now(), "lastTransitionTime": _now()}
        if cni:
            ready.update(status="True", reason="KubeletReady", message="kubelet is posting ready status")
        else:
            ready.update(status="False", reason="KubeletNotReady",
                         message="container runtime network not ready: NetworkReady=false "
                                 "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin "
                                 "not initialized")
        return [{"type": t, "status": "False", "reason": r, "lastHeartbeatTime": _now(),
                 "lastTransitionTime": _now(), "message": m} for t, r, m in (
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"))] + [ready]

    def _status(self):
        return {"addresses": [{"type": "InternalIP", "address": self.ip}, {"type": "Hostname", "address": self.node}],
                "conditions": self._conditions(),
                "nodeInfo": {"kubeletVersion": f"v{self.version}", "kubeProxyVersion": f"v{self.version}",
                             "containerRuntimeVersion": self.runtime, "operatingSystem": "linux",
                             "architecture": "amd64"}}

    def sync(self, pods):
        try:
            if not self.registered:
                status, body = self.client.request("POST", "/api/v1/nodes", {
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": self.node, "labels": {
                        "kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                        "beta.kubernetes.io/arch": "amd64"}},
                    "spec": {}, "status": self._status()})
                if status not in (201, 409):
                    raise apiclient.APIError(status, body)
                self.registered = True
                self.log(f"Successfully registered node {self.node}")
            if time.monotonic() - self.last_status >= 10:
                self.client.merge_patch(f"/api/v1/nodes/{self.node}", {"status": self._status()})
                self.last_status = time.monotonic()
            for pod in pods:
                self._mirror(pod)
        except (apiclient.APIError, apiclient.Unreachable) as e:
            self.log(f"node status: {e}")

    def _mirror(self, pod):
        name = f"{pod.name}-{self.node}"
        md = pod.spec["metadata"]
        annotations = dict(md.get("annotations") or {})
        annotations.update({"kubernetes.io/config.hash": pod.hash, "kubernetes.io/config.mirror": pod.hash,
                            "kubernetes.io/config.source": "file"})
        phase = "Running" if pod.running() else "Pending"
        obj = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": pod.namespace, "labels": md.get("labels") or {},
                            "annotations": annotations},
               "spec": dict(pod.spec["spec"], nodeName=self.node),
               "status": {"phase": phase, "podIP": self.ip, "hostIP": self.ip}}
        if getattr(pod, "mirrored", None) == (pod.hash, phase):
            return
        status, body = self.client.request("POST", f"/api/v1/namespaces/{pod.namespace}/pods", obj)
        if status == 409:
            status, body = self.client.request("PUT", f"/api/v1/namespaces/{pod.namespace}/pods/{name}", obj)
        if status < 300:
            pod.mirrored = (pod.hash, phase)
