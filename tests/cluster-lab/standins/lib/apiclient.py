"""A small JSON client for the Kubernetes API (the stand-in or a real one).

`Client.request` returns (status, body-as-dict); transport failures raise
`Unreachable` so callers can retry like client-go's callers do."""

import http.client
import json
import ssl
import urllib.parse

import kubeconfig


class Unreachable(Exception):
    pass


class APIError(Exception):
    def __init__(self, status, body):
        self.status = status
        self.body = body if isinstance(body, dict) else {}
        msg = self.body.get("message") or str(body)
        super().__init__(f"{status}: {msg}")

    @property
    def reason(self):
        return self.body.get("reason", "")


class Client:
    def __init__(self, server, ssl_context, token=None, timeout=10):
        u = urllib.parse.urlsplit(server)
        self.host, self.port = u.hostname, u.port or 443
        self.server = server
        self.ctx = ssl_context
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_kubeconfig(cls, config, server=None, timeout=10):
        return cls(server or kubeconfig.server(config), kubeconfig.ssl_context(config),
                   kubeconfig.token(config), timeout)

    @classmethod
    def insecure(cls, server, token=None, timeout=10):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return cls(server, ctx, token, timeout)

    def request(self, method, path, body=None, content_type="application/json", raw=False):
        headers = {"Accept": "application/json", "User-Agent": "k8s-standin"}
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            data = data.encode() if isinstance(data, str) else data
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=self.timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            text = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise Unreachable(f"{method} {self.server}{path}: {e}") from e
        finally:
            conn.close()
        if raw:
            return resp.status, text
        try:
            parsed = json.loads(text) if text else {}
        except ValueError:
            parsed = {"message": text.decode(errors="replace")}
        return resp.status, parsed

    def get(self, path):
        status, body = self.request("GET", path)
        if status >= 300:
            raise APIError(status, body)
        return body

    def create(self, path, obj):
        status, body = self.request("POST", path, obj)
        if status >= 300:
            raise APIError(status, body)
        return body

    def put(self, path, obj):
        status, body = self.request("PUT", path, obj)
        if status >= 300:
            raise APIError(status, body)
        return body

    def merge_patch(self, path, patch):
        status, body = self.request("PATCH", path, patch, "application/merge-patch+json")
        if status >= 300:
            raise APIError(status, body)
        return body

    def delete(self, path):
        status, body = self.request("DELETE", path)
        if status >= 300:
            raise APIError(status, body)
        return body

    def create_or_update(self, path, obj):
        """POST, or on AlreadyExists PUT over the existing object (kubeadm's
        apiclient.CreateOrUpdate* helpers do the same)."""
        status, body = self.request("POST", path, obj)
        if status == 409:
            name = obj["metadata"]["name"]
            return self.put(f"{path}/{name}", obj)
        if status >= 300:
            raise APIError(status, body)
        return body
