"""X.509 work through the openssl command line (the stdlib has no X.509).

Keys are RSA 2048 like kubeadm's default; leaf certificates are valid for
one year like kubeadm's. Only what the stand-ins need: issue a leaf from a
CA, check a cert against its CA, read its subject and SANs, and compute the
`sha256:` public key pin kubeadm's `caCertHashes` use (SHA-256 of the DER
SubjectPublicKeyInfo, cmd/kubeadm/app/util/pubkeypin).
"""

import hashlib
import os
import subprocess
import tempfile


class PKIError(Exception):
    pass


def _openssl(*args, stdin=None):
    res = subprocess.run(["openssl", *args], input=stdin, capture_output=True)
    if res.returncode != 0:
        raise PKIError(f"openssl {args[0]}: {res.stderr.decode(errors='replace').strip()}")
    return res.stdout


def write_private(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def write_public(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, 0o644)


def new_key():
    return _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")


def new_csr(key_pem, common_name, organizations=()):
    subj = "".join(f"/O={o}" for o in organizations) + f"/CN={common_name}"
    with tempfile.NamedTemporaryFile() as k:
        k.write(key_pem)
        k.flush()
        return _openssl("req", "-new", "-key", k.name, "-subj", subj)


def sign_csr(csr_pem, ca_crt, ca_key, usages, dns=(), ips=(), days=365):
    """Signs a CSR with the CA files; usages: serverAuth and/or clientAuth."""
    ext = ["basicConstraints=critical,CA:FALSE",
           "keyUsage=critical,digitalSignature,keyEncipherment",
           "extendedKeyUsage=" + ",".join(usages),
           "authorityKeyIdentifier=keyid"]
    sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
    if sans:
        ext.append("subjectAltName=" + ",".join(sans))
    with tempfile.NamedTemporaryFile("w") as e, tempfile.NamedTemporaryFile() as c:
        e.write("[v3]\n" + "\n".join(ext) + "\n")
        e.flush()
        c.write(csr_pem)
        c.flush()
        return _openssl("x509", "-req", "-in", c.name, "-CA", ca_crt, "-CAkey", ca_key,
                        "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
                        "-days", str(days), "-sha256", "-extfile", e.name, "-extensions", "v3")


def issue(ca_crt, ca_key, common_name, organizations=(), usages=("clientAuth",), dns=(), ips=()):
    """A fresh key and a certificate signed by the CA: (cert_pem, key_pem)."""
    key = new_key()
    csr = new_csr(key, common_name, organizations)
    return sign_csr(csr, ca_crt, ca_key, usages, dns, ips), key


def verify(cert_path, ca_path):
    res = subprocess.run(["openssl", "verify", "-CAfile", ca_path, cert_path], capture_output=True)
    return res.returncode == 0


def cert_text(cert_pem):
    return _openssl("x509", "-noout", "-text", stdin=cert_pem).decode()


def csr_subject(csr_pem):
    """(CN, [O...]) of a PEM CSR."""
    out = _openssl("req", "-noout", "-subject", "-nameopt", "RFC2253", stdin=csr_pem).decode()
    return _parse_rfc2253(out.split("=", 1)[1].strip() if out.startswith("subject=") else out)


def _parse_rfc2253(dn):
    cn, orgs = "", []
    for part in dn.split(","):
        k, _, v = part.strip().partition("=")
        if k == "CN":
            cn = v
        elif k == "O":
            orgs.append(v)
    return cn, orgs


def spki_pin(cert_pem):
    """kubeadm's CA pin: sha256:<hex of SHA-256 over the DER SubjectPublicKeyInfo>."""
    pub = _openssl("x509", "-noout", "-pubkey", stdin=cert_pem)
    der = _openssl("pkey", "-pubin", "-outform", "DER", stdin=pub)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def self_signed(common_name, dns=(), ips=()):
    """A throw-away self-signed serving cert (components' own HTTPS, like theirs)."""
    key = new_key()
    sans = ",".join([f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]) or f"DNS:{common_name}"
    with tempfile.NamedTemporaryFile() as k:
        k.write(key)
        k.flush()
        cert = _openssl("req", "-x509", "-new", "-key", k.name, "-subj", f"/CN={common_name}",
                        "-days", "365", "-addext", f"subjectAltName={sans}")
    return cert, key
