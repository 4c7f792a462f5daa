"""Detached JWS (HS256) as the bootstrap signer puts in cluster-info and
kubeadm's token discovery checks (k8s.io/cluster-bootstrap/token/jws):
`<protected header>..<signature>`, keyed by the token secret, the header
naming the token id as `kid`."""

import base64
import hashlib
import hmac
import json


def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def detached_signature(content, token_id, token_secret):
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    payload = _b64url(content.encode())
    sig = hmac.new(token_secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}..{_b64url(sig)}"


def detached_token_is_valid(detached, content, token_id, token_secret):
    return hmac.compare_digest(detached, detached_signature(content, token_id, token_secret))
