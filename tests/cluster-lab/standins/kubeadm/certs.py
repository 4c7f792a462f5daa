"""kubeadm's certs phase (cmd/kubeadm/app/phases/certs) on a pre-made PKI.

The CAs (ca, front-proxy-ca, etcd/ca) and the service-account key pair must
already be in certificatesDir: bootherd always puts them there. The real
kubeadm would generate any that are missing (and run in "external CA" mode
when a CA has no key); the stand-in fails instead, naming the file, so a
bootherd that forgets one is caught rather than silently given a CA no
other node shares. Leaf certificates are issued with kubeadm's subjects,
usages and SANs; an existing leaf is reused when it is signed by its CA and
carries the required SANs, as kubeadm does, and refused otherwise."""

import ipaddress
import os
import re

import k8s_versions as kv
import pki
from out import say

CAS = [("ca", "CA"), ("front-proxy-ca", "front-proxy CA"), ("etcd/ca", "etcd CA")]


class CertError(Exception):
    pass


def _is_ip(s):
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def _split(names):
    dns = [n for n in names if not _is_ip(n)]
    ips = [n for n in names if _is_ip(n)]
    return dns, ips


def shared_certificate_errors(d, local_etcd=True):
    """kubeadm's SharedCertificateExists for a control-plane join without
    certificateKey: the files every control plane must already share."""
    errs = []
    pairs = [("ca", "CA"), ("sa", "service account"), ("front-proxy-ca", "front-proxy CA")]
    if local_etcd:
        pairs.append(("etcd/ca", "etcd CA"))
    for base, what in pairs:
        if base == "sa":
            for f in ("sa.key", "sa.pub"):
                if not os.path.exists(os.path.join(d, f)):
                    errs.append(f"failure loading key for {what}: couldn't load the private key file "
                                f"{os.path.join(d, f)}: open {os.path.join(d, f)}: no such file or directory")
            continue
        for ext, kind in (("crt", "certificate"), ("key", "key")):
            p = os.path.join(d, f"{base}.{ext}")
            if not os.path.exists(p):
                errs.append(f"failure loading {kind} for {what}: couldn't load the {kind} file {p}: "
                            f"open {p}: no such file or directory")
    return errs


def require_cas(d):
    missing = [os.path.join(d, f) for base, _ in CAS for f in (f"{base}.crt", f"{base}.key")
               if not os.path.exists(os.path.join(d, f))]
    missing += [os.path.join(d, f) for f in ("sa.key", "sa.pub") if not os.path.exists(os.path.join(d, f))]
    if missing:
        raise CertError("stand-in: the pre-made PKI is incomplete (real kubeadm would generate a new CA or key "
                        "here, which no other node shares): missing " + ", ".join(missing))
    for base, what in CAS:
        say(f"[certs] Using existing {base} certificate authority")
    say("[certs] Using the existing \"sa\" key")


def _sans_ok(cert_pem, dns, ips):
    text = pki.cert_text(cert_pem)
    m = re.search(r"X509v3 Subject Alternative Name:.*?\n\s*(.*)\n", text)
    have_dns, have_ips = set(), set()
    for entry in (m.group(1).split(",") if m else []):
        kind, _, value = entry.strip().partition(":")
        if kind == "DNS":
            have_dns.add(value)
        elif kind == "IP Address":
            have_ips.add(ipaddress.ip_address(value))
    return set(dns) <= have_dns and {ipaddress.ip_address(i) for i in ips} <= have_ips


def _leaf(d, base, ca, cn, orgs, usages, dns=(), ips=()):
    crt, key = os.path.join(d, f"{base}.crt"), os.path.join(d, f"{base}.key")
    ca_crt, ca_key = os.path.join(d, f"{ca}.crt"), os.path.join(d, f"{ca}.key")
    label = base.replace("/", "-") if not base.startswith("etcd/") else base
    if os.path.exists(crt) and os.path.exists(key):
        with open(crt, "rb") as f:
            existing = f.read()
        if not pki.verify(crt, ca_crt):
            raise CertError(f"certificate {label} is not signed by corresponding CA")
        if not _sans_ok(existing, dns, ips):
            raise CertError(f"certificate {label} is invalid: it does not contain the required SANs "
                            f"{list(dns) + list(ips)}")
        say(f"[certs] Using the existing \"{label}\" certificate and key")
        return
    cert_pem, key_pem = pki.issue(ca_crt, ca_key, cn, orgs, usages, dns, ips)
    pki.write_public(crt, cert_pem)
    pki.write_private(key, key_pem)
    if dns or ips:
        say(f"[certs] {label} serving cert is signed for DNS names [{' '.join(dns)}] and IPs [{' '.join(ips)}]")
    else:
        say(f"[certs] Generating \"{label}\" certificate and key")


def first_service_ip(cidr):
    net = ipaddress.ip_network(cidr.split(",")[0].strip(), strict=False)
    return str(net.network_address + 1)


def apiserver_sans(node, cluster, local_ep):
    dns = [node, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           f"kubernetes.default.svc.{cluster['networking']['dnsDomain']}"]
    ips = [first_service_ip(cluster["networking"]["serviceSubnet"]), local_ep["advertiseAddress"]]
    cpe = cluster.get("controlPlaneEndpoint") or ""
    if cpe:
        host = cpe.rsplit(":", 1)[0].strip("[]") if (cpe.count(":") == 1 or cpe.startswith("[")) else cpe
        (ips if _is_ip(host) else dns).append(host)
    extra_dns, extra_ips = _split(cluster["apiServer"].get("certSANs") or [])
    dns += [n for n in extra_dns if n not in dns]
    ips += [i for i in extra_ips if i not in ips]
    return dns, ips


def issue_node_certs(version, node, cluster, local_ep):
    """The certs every control plane has its own of."""
    d = cluster["certificatesDir"]
    admins = "kubeadm:cluster-admins" if kv.has_super_admin(version) else "system:masters"
    dns, ips = apiserver_sans(node, cluster, local_ep)
    _leaf(d, "apiserver", "ca", "kube-apiserver", [], ["serverAuth"], dns, ips)
    _leaf(d, "apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client", [admins], ["clientAuth"])
    _leaf(d, "front-proxy-client", "front-proxy-ca", "front-proxy-client", [], ["clientAuth"])
    if "local" in cluster["etcd"]:
        etcd_dns = [node, "localhost"]
        etcd_ips = [local_ep["advertiseAddress"], "127.0.0.1", "::1"]
        _leaf(d, "etcd/server", "etcd/ca", node, [], ["serverAuth", "clientAuth"], etcd_dns, etcd_ips)
        _leaf(d, "etcd/peer", "etcd/ca", node, [], ["serverAuth", "clientAuth"], etcd_dns, etcd_ips)
        _leaf(d, "etcd/healthcheck-client", "etcd/ca", "kube-etcd-healthcheck-client", [], ["clientAuth"])
        _leaf(d, "apiserver-etcd-client", "etcd/ca", "kube-apiserver-etcd-client", [], ["clientAuth"])
