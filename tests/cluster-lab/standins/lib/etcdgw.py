"""A client for etcd's v3 JSON gateway (`POST /v3/...`, etcd 3.4+) over
mutual TLS, trying each endpoint in turn like clientv3 does. It talks to the
real etcd: learner adds, promotion and its refusals ("too many learner
members in cluster", "can only promote a learner member which is in sync
with leader") are etcd's own."""

import base64
import http.client
import json
import ssl
import urllib.parse


class EtcdError(Exception):
    """etcd answered with an error (its gRPC message is in str())."""


class EtcdUnreachable(Exception):
    pass


def _b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def _prefix_end(prefix):
    b = bytearray(prefix.encode())
    b[-1] += 1
    return bytes(b)


class Etcd:
    def __init__(self, endpoints, ca_file, cert_file, key_file, timeout=5):
        self.endpoints = list(endpoints)
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
        ctx.load_cert_chain(cert_file, key_file)
        self.ctx = ctx
        self.timeout = timeout

    def _call(self, path, body):
        last = None
        for ep in self.endpoints:
            u = urllib.parse.urlsplit(ep)
            conn = http.client.HTTPSConnection(u.hostname, u.port or 2379, context=self.ctx,
                                               timeout=self.timeout)
            try:
                conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
                resp = conn.getresponse()
                text = resp.read()
            except (OSError, http.client.HTTPException) as e:
                last = EtcdUnreachable(f"{ep}: {e}")
                continue
            finally:
                conn.close()
            data = json.loads(text or b"{}")
            if resp.status != 200 or "error" in data:
                msg = data.get("message") or data.get("error") or text.decode(errors="replace")
                # A learner refuses client RPCs; the next endpoint may be a voter.
                if "not supported for learner" in msg and ep != self.endpoints[-1]:
                    last = EtcdError(msg)
                    continue
                raise EtcdError(msg)
            return data
        raise last or EtcdUnreachable("no etcd endpoints")

    # --- key/value ---
    def put(self, key, value):
        return self._call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    def get(self, key):
        """(value bytes, mod_revision) or (None, 0)."""
        kvs = self._call("/v3/kv/range", {"key": _b64(key)}).get("kvs") or []
        if not kvs:
            return None, 0
        return base64.b64decode(kvs[0].get("value", "")), int(kvs[0].get("mod_revision", 0))

    def list(self, prefix):
        data = self._call("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))})
        return [(base64.b64decode(kv["key"]).decode(), base64.b64decode(kv.get("value", "")),
                 int(kv.get("mod_revision", 0))) for kv in data.get("kvs") or []]

    def delete(self, key):
        return int(self._call("/v3/kv/deleterange", {"key": _b64(key)}).get("deleted", 0))

    # --- cluster membership ---
    def members(self):
        """[{ID (int), name, peerURLs, clientURLs, isLearner}]"""
        out = []
        for m in self._call("/v3/cluster/member/list", {}).get("members") or []:
            out.append({"ID": int(m["ID"]), "name": m.get("name", ""),
                        "peerURLs": m.get("peerURLs") or [], "clientURLs": m.get("clientURLs") or [],
                        "isLearner": bool(m.get("isLearner"))})
        return out

    def add_member(self, peer_url, learner):
        data = self._call("/v3/cluster/member/add", {"peerURLs": [peer_url], "isLearner": learner})
        return int(data["member"]["ID"])

    def promote(self, member_id):
        self._call("/v3/cluster/member/promote", {"ID": str(member_id)})

    def remove(self, member_id):
        self._call("/v3/cluster/member/remove", {"ID": str(member_id)})

    def status(self):
        return self._call("/v3/maintenance/status", {})
