"""The kubelet's TLS bootstrap: with no kubelet.conf but a
bootstrap-kubelet.conf, create a key and a CSR for system:node:<name>
(group system:nodes, signer kubernetes.io/kube-apiserver-client-kubelet)
with the bootstrap token, wait for the signed certificate, store it as
/var/lib/kubelet/pki/kubelet-client-current.pem and write kubelet.conf
pointing at it — the files the real kubelet writes."""

import base64
import os
import time

import apiclient
import kubeconfig
import pki

PKI_DIR = "/var/lib/kubelet/pki"


def bootstrap(bootstrap_path, kubeconfig_path, node, log):
    boot = kubeconfig.load(bootstrap_path)
    client = apiclient.Client.from_kubeconfig(boot)
    key = pki.new_key()
    csr = pki.new_csr(key, f"system:node:{node}", ["system:nodes"])
    name = f"csr-{os.urandom(3).hex()}"
    client.create("/apis/certificates.k8s.io/v1/certificatesigningrequests", {
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
        "spec": {"request": base64.b64encode(csr).decode(), "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                 "usages": ["digital signature", "client auth"]}})
    log(f"TLS bootstrap: created CSR {name} via {kubeconfig.server(boot)}")
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        obj = client.get(f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}")
        cert = (obj.get("status") or {}).get("certificate")
        if cert:
            os.makedirs(PKI_DIR, exist_ok=True)
            stamp = time.strftime("%Y-%m-%d-%H-%M-%S")
            path = os.path.join(PKI_DIR, f"kubelet-client-{stamp}.pem")
            pki.write_private(path, base64.b64decode(cert) + key)
            current = os.path.join(PKI_DIR, "kubelet-client-current.pem")
            if os.path.lexists(current):
                os.remove(current)
            os.symlink(path, current)
            kubeconfig.write(kubeconfig_path, kubeconfig.build(
                kubeconfig.server(boot), kubeconfig.ca_pem(boot), "default-auth", "default-cluster",
                cert_file=current, key_file=current))
            log(f"TLS bootstrap: wrote {kubeconfig_path}")
            return
        time.sleep(1)
    raise TimeoutError("timed out waiting for the CSR to be signed")
