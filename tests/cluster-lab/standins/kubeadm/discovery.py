"""Bootstrap-token discovery (cmd/kubeadm/app/discovery/token/token.go):
fetch kube-public/cluster-info from apiServerEndpoint without trusting its
certificate, retrying every 5 s until discovery timeout while the
ConfigMap or the token's `jws-kubeconfig-<id>` signature is missing; check
the detached JWS with the token secret; pin the CA in the returned
kubeconfig against caCertHashes (failing at once on a mismatch); fetch it
again, now trusting that CA, and require the same content."""

import ssl

import yaml

import apiclient
import jws
import kubeconfig
import pki
from out import human, poll, say

INTERVAL = 5.0


class DiscoveryError(Exception):
    pass


def _cluster_info(client):
    status, body = client.request("GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info")
    if status != 200:
        raise apiclient.APIError(status, body)
    return body


def _validated_kubeconfig(cm, token_id, token_secret):
    data = cm.get("data") or {}
    content = data.get("kubeconfig")
    if not content:
        raise DiscoveryError("there is no kubeconfig key in the cluster-info ConfigMap")
    sig = data.get(f"jws-kubeconfig-{token_id}")
    if not sig:
        raise DiscoveryError(f"token id \"{token_id}\" is invalid for this cluster or it has expired. Use "
                             f"\"kubeadm token create\" on the control-plane node to create a new valid token")
    if not jws.detached_token_is_valid(sig, content, token_id, token_secret):
        raise DiscoveryError("failed to verify JWS signature of received cluster info object, can't trust this "
                             "API Server")
    return content


def discover(bt, timeout):
    """The validated cluster-info kubeconfig (a dict) for the join."""
    token = bt["token"]
    token_id, token_secret = token.split(".", 1)
    endpoint = bt["apiServerEndpoint"]
    pins = bt.get("caCertHashes") or []
    for p in pins:
        if not p.startswith("sha256:"):
            raise DiscoveryError(f"invalid discovery token CA certificate hash: unknown hash format \"{p}\"")
    say(f"[discovery] Created cluster-info discovery client, requesting info from \"{endpoint}\"")
    insecure = apiclient.Client.insecure(f"https://{endpoint}")
    content, err = poll(timeout, INTERVAL,
                        lambda: _validated_kubeconfig(_cluster_info(insecure), token_id, token_secret))
    if not content:
        raise DiscoveryError(str(err) if err else f"timed out after {human(timeout)}")
    info = yaml.safe_load(content)
    ca = kubeconfig.ca_pem(info)
    if pins:
        got = pki.spki_pin(ca)
        if got not in pins:
            raise DiscoveryError(f"cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "
                                 f"\"{got}\" are pinned")
        secure = apiclient.Client(f"https://{endpoint}", ssl.create_default_context(cadata=ca.decode()))
        again, err = poll(timeout, INTERVAL, lambda: _cluster_info(secure))
        if not again:
            raise DiscoveryError(f"failed to get the cluster-info ConfigMap with the pinned CA: {err}")
        if again.get("data", {}).get("kubeconfig") != content:
            raise DiscoveryError("the second kubeconfig from the cluster-info ConfigMap (possibly from a different "
                                 "API server) did not match the first")
    say(f"[discovery] Cluster info signature and contents are valid and TLS certificate validates against "
        f"pinned roots, will use API Server \"{endpoint}\"")
    return info
