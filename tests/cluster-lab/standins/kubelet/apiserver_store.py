"""The API server stand-in's object store: JSON objects in the real etcd
under /registry/..., so every API server of the cluster sees the same
state, and which resources exist (built-in kinds plus served CRDs), with
their scope, for routing and discovery."""

import json
import time
import uuid

BUILTIN = {
    ("", "v1"): {"namespaces": ("Namespace", False), "nodes": ("Node", False), "configmaps": ("ConfigMap", True),
                 "secrets": ("Secret", True), "pods": ("Pod", True), "services": ("Service", True),
                 "serviceaccounts": ("ServiceAccount", True), "endpoints": ("Endpoints", True),
                 "events": ("Event", True), "limitranges": ("LimitRange", True),
                 "resourcequotas": ("ResourceQuota", True), "persistentvolumes": ("PersistentVolume", False)},
    ("rbac.authorization.k8s.io", "v1"): {"clusterroles": ("ClusterRole", False),
                                          "clusterrolebindings": ("ClusterRoleBinding", False),
                                          "roles": ("Role", True), "rolebindings": ("RoleBinding", True)},
    ("apps", "v1"): {"deployments": ("Deployment", True), "daemonsets": ("DaemonSet", True),
                     "statefulsets": ("StatefulSet", True), "replicasets": ("ReplicaSet", True)},
    ("apiextensions.k8s.io", "v1"): {"customresourcedefinitions": ("CustomResourceDefinition", False)},
    ("certificates.k8s.io", "v1"): {"certificatesigningrequests": ("CertificateSigningRequest", False)},
    ("admissionregistration.k8s.io", "v1"): {
        "mutatingwebhookconfigurations": ("MutatingWebhookConfiguration", False),
        "validatingwebhookconfigurations": ("ValidatingWebhookConfiguration", False)},
    ("policy", "v1"): {"poddisruptionbudgets": ("PodDisruptionBudget", True)},
    ("scheduling.k8s.io", "v1"): {"priorityclasses": ("PriorityClass", False)},
    ("coordination.k8s.io", "v1"): {"leases": ("Lease", True)},
    ("batch", "v1"): {"jobs": ("Job", True), "cronjobs": ("CronJob", True)},
    ("networking.k8s.io", "v1"): {"networkpolicies": ("NetworkPolicy", True), "ingresses": ("Ingress", True)},
    ("storage.k8s.io", "v1"): {"storageclasses": ("StorageClass", False), "csidrivers": ("CSIDriver", False)},
}
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
MAX_ANNOTATIONS = 262144  # apimachinery's TotalAnnotationSizeLimitB


class StoreError(Exception):
    def __init__(self, code, reason, message):
        self.code, self.reason = code, reason
        super().__init__(message)


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Store:
    def __init__(self, etcd):
        self.etcd = etcd

    # --- resources ---
    def resources(self, group, version):
        """{plural: (kind, namespaced)} served at group/version."""
        out = dict(BUILTIN.get((group, version), {}))
        for crd in self.crds():
            spec = crd.get("spec", {})
            if spec.get("group") == group and any(v.get("name") == version and v.get("served", True)
                                                  for v in spec.get("versions", [])):
                out[spec["names"]["plural"]] = (spec["names"]["kind"], spec.get("scope") == "Namespaced")
        return out

    def groups(self):
        gv = {}
        for (g, v) in BUILTIN:
            gv.setdefault(g, set()).add(v)
        for crd in self.crds():
            spec = crd.get("spec", {})
            for v in spec.get("versions", []):
                gv.setdefault(spec.get("group"), set()).add(v["name"])
        return gv

    def crds(self):
        return [json.loads(v) for _, v, _ in self.etcd.list("/registry/apiextensions.k8s.io/customresourcedefinitions/")]

    # --- objects ---
    @staticmethod
    def key(group, resource, ns, name=""):
        base = f"/registry/{group + '/' if group else ''}{resource}/"
        return base + (f"{ns}/" if ns else "") + name

    def get(self, group, resource, ns, name):
        raw, rev = self.etcd.get(self.key(group, resource, ns, name))
        if raw is None:
            raise StoreError(404, "NotFound", f"{resource}{'.' + group if group else ''} \"{name}\" not found")
        obj = json.loads(raw)
        obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
        return obj

    def list(self, group, resource, ns):
        out = []
        prefix = self.key(group, resource, ns)
        for _, raw, rev in self.etcd.list(prefix):
            obj = json.loads(raw)
            obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
            out.append(obj)
        return out

    def exists(self, group, resource, ns, name):
        return self.etcd.get(self.key(group, resource, ns, name))[0] is not None

    def _check(self, obj):
        size = sum(len(k) + len(v) for k, v in (obj.get("metadata", {}).get("annotations") or {}).items())
        if size > MAX_ANNOTATIONS:
            raise StoreError(422, "Invalid", f"{obj.get('kind')}.{obj.get('apiVersion')} "
                                             f"\"{obj['metadata'].get('name')}\" is invalid: metadata.annotations: "
                                             f"Too long: must have at most {MAX_ANNOTATIONS} bytes")

    def put(self, group, resource, ns, obj, create):
        md = obj.setdefault("metadata", {})
        name = md.get("name")
        if not name:
            raise StoreError(422, "Invalid", "metadata.name: Required value: name or generateName is required")
        if ns:
            md["namespace"] = ns
            if resource != "namespaces" and not self.exists("", "namespaces", "", ns):
                raise StoreError(404, "NotFound", f"namespaces \"{ns}\" not found")
        key = self.key(group, resource, ns, name)
        old_raw, _ = self.etcd.get(key)
        if create and old_raw is not None:
            raise StoreError(409, "AlreadyExists",
                             f"{resource}{'.' + group if group else ''} \"{name}\" already exists")
        if old_raw is not None:
            old = json.loads(old_raw)
            md["uid"] = old["metadata"].get("uid")
            md["creationTimestamp"] = old["metadata"].get("creationTimestamp")
        else:
            md.setdefault("uid", str(uuid.uuid4()))
            md.setdefault("creationTimestamp", now())
        md.pop("resourceVersion", None)
        self._check(obj)
        rev = int(self.etcd.put(key, json.dumps(obj)).get("header", {}).get("revision", 0))
        md["resourceVersion"] = str(rev)
        return obj

    def delete(self, group, resource, ns, name):
        obj = self.get(group, resource, ns, name)
        self.etcd.delete(self.key(group, resource, ns, name))
        return obj

    def ensure_default_namespaces(self):
        for ns in DEFAULT_NAMESPACES:
            if not self.exists("", "namespaces", "", ns):
                try:
                    self.put("", "namespaces", "", {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": ns}, "status": {"phase": "Active"}}, True)
                except StoreError:
                    pass  # another API server made it first
