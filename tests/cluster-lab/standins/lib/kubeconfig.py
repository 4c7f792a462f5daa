"""Reading and writing kubeconfig files (clientcmd v1), and the TLS client
settings one describes: server URL, CA, client certificate or bearer token.
Embedded (`*-data`) and file-path forms are both read."""

import atexit
import base64
import os
import shutil
import ssl
import tempfile

import yaml

_tmpdir = None


def _private_tmp():
    global _tmpdir
    if _tmpdir is None:
        _tmpdir = tempfile.mkdtemp(prefix="kubeconfig-")
        atexit.register(shutil.rmtree, _tmpdir, True)
    return _tmpdir


def build(server, ca_pem, user, cluster_name="kubernetes", cert_pem=None, key_pem=None,
          token=None, cert_file=None, key_file=None):
    """A kubeconfig with one cluster/user/context, like kubeadm writes."""
    auth = {}
    if token:
        auth["token"] = token
    if cert_pem:
        auth["client-certificate-data"] = base64.b64encode(cert_pem).decode()
        auth["client-key-data"] = base64.b64encode(key_pem).decode()
    if cert_file:
        auth["client-certificate"] = cert_file
        auth["client-key"] = key_file
    ctx = f"{user}@{cluster_name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {
            "certificate-authority-data": base64.b64encode(ca_pem).decode(),
            "server": server}}],
        "contexts": [{"name": ctx, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": ctx,
        "preferences": {},
        "users": [{"name": user, "user": auth}],
    }


def write(path, config):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, default_flow_style=False, sort_keys=False)


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _current(config):
    """(cluster, user) of the current context; cluster-info has no contexts,
    only one cluster, and no users."""
    contexts = config.get("contexts") or []
    name = config.get("current-context")
    ctx = next((c["context"] for c in contexts if c["name"] == name), contexts[0]["context"] if contexts else None)
    if ctx is None:
        return config["clusters"][0]["cluster"], {}
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == ctx["cluster"])
    user = next((u.get("user") or {} for u in config.get("users") or [] if u["name"] == ctx.get("user")), {})
    return cluster, user


def server(config):
    return _current(config)[0]["server"]


def ca_pem(config):
    cluster, _ = _current(config)
    if "certificate-authority-data" in cluster:
        return base64.b64decode(cluster["certificate-authority-data"])
    if "certificate-authority" in cluster:
        with open(cluster["certificate-authority"], "rb") as f:
            return f.read()
    return None


def token(config):
    return _current(config)[1].get("token")


def _material(user, key):
    if f"{key}-data" in user:
        return base64.b64decode(user[f"{key}-data"]), None
    if key in user:
        return None, user[key]
    return None, None


def ssl_context(config, server_override=None):
    """An SSLContext trusting the kubeconfig's CA and presenting its client cert."""
    _, user = _current(config)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca = ca_pem(config)
    if ca:
        ctx.load_verify_locations(cadata=ca.decode())
    cert, cert_file = _material(user, "client-certificate")
    key, key_file = _material(user, "client-key")
    if cert is not None:
        d = tempfile.mkdtemp(dir=_private_tmp())
        cert_file, key_file = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        for p, data in ((cert_file, cert), (key_file, key)):
            fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx
