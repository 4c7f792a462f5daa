"""What kube-controller-manager would do that the lab needs, done by the
API server stand-in when the objects are read or written (no controller
loop):

- bootstrapsigner: cluster-info carries `jws-kubeconfig-<id>` for every
  bootstrap token that is usable for signing and not expired, and no
  others (computed when cluster-info is read);
- tokencleaner: expired bootstrap-token Secrets are deleted when Secrets in
  kube-system are read;
- csrapproving + csrsigning: a kubelet client CSR from a bootstrap token is
  approved and signed with the cluster CA (ca.key beside --client-ca-file)
  while kubeadm's kubeadm:node-autoapprove-bootstrap binding exists."""

import base64
import os

import jws
import pki
from apiserver_auth import _secret_field, token_expired
from apiserver_store import StoreError


def _tokens(store):
    return [s for s in store.list("", "secrets", "kube-system") if s.get("type") == "bootstrap.kubernetes.io/token"]


def clean_expired_tokens(store):
    for s in _tokens(store):
        if token_expired(s):
            try:
                store.delete("", "secrets", "kube-system", s["metadata"]["name"])
            except StoreError:
                pass


def sign_cluster_info(store, cm):
    data = {k: v for k, v in (cm.get("data") or {}).items() if not k.startswith("jws-kubeconfig-")}
    content = data.get("kubeconfig")
    if content:
        for s in _tokens(store):
            if _secret_field(s, "usage-bootstrap-signing") == "true" and not token_expired(s):
                tid = _secret_field(s, "token-id")
                data[f"jws-kubeconfig-{tid}"] = jws.detached_signature(content, tid, _secret_field(s, "token-secret"))
    cm["data"] = data
    return cm


def approve_and_sign(store, csr, requester, ca_file):
    if "system:bootstrappers" not in requester.groups:
        return csr
    if not store.exists("rbac.authorization.k8s.io", "clusterrolebindings", "", "kubeadm:node-autoapprove-bootstrap"):
        return csr
    spec = csr.get("spec", {})
    if spec.get("signerName") != "kubernetes.io/kube-apiserver-client-kubelet":
        return csr
    pem = base64.b64decode(spec["request"])
    cn, orgs = pki.csr_subject(pem)
    if not cn.startswith("system:node:") or orgs != ["system:nodes"]:
        return csr
    key = os.path.join(os.path.dirname(ca_file), "ca.key")
    cert = pki.sign_csr(pem, ca_file, key, ["clientAuth"])
    csr["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "AutoApproved",
                                     "message": "Auto approving kubelet client certificate after SubjectAccessReview."}],
                     "certificate": base64.b64encode(cert).decode()}
    return csr
