"""kube-apiserver stand-in, run by the stand-in kubelet from the
kube-apiserver static Pod manifest (its flags are kube-apiserver's).

Serves HTTPS on --secure-port with --tls-cert-file (the certificate
kubeadm issued), authenticates as apiserver_auth says, stores objects in
the real etcd of --etcd-servers with the --etcd-certfile client cert
(apiserver_store), and answers what the lab uses: /livez, /readyz (etcd
answering), /healthz, /version, discovery (/api, /apis, group versions),
and get/list (labelSelector equality only)/create/replace/merge-patch/
server-side apply/delete of built-in kinds and of the kinds of served CRDs
(whose status gets Established and NamesAccepted at once).

Not modelled: watch, field selectors, admission (beyond namespaces having
to exist and the 256 KiB annotation limit that breaks client-side apply of
large CRDs), validation against OpenAPI schemas, resourceVersion conflicts
(last write wins), strategic merge (treated as JSON merge patch), field
ownership of server-side apply (apply replaces the object's fields)."""

import argparse
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

import apiserver_controllers as ctl
import etcdgw
import k8s_versions as kv
from apiserver_auth import allowed, authenticate
from apiserver_store import Store, StoreError, now

VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def status_obj(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def merge(dst, patch):
    """JSON merge patch (RFC 7386)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(dst) if isinstance(dst, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


def parse_path(path):
    """(group, version, namespace, resource, name, subresource) or None."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    ns = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    return group, version, ns, resource, name, sub


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-standin"

    def log_message(self, fmt, *args):
        if os.environ.get("APISERVER_STANDIN_DEBUG"):
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def setup(self):
        super().setup()
        self.connection.do_handshake()

    def _send(self, code, obj, content_type="application/json"):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        ctype = self.headers.get("Content-Type", "")
        if not raw:
            return None
        if "yaml" in ctype:
            return yaml.safe_load(raw)
        return json.loads(raw)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    def _handle(self, method):
        srv = self.server.app
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        path = url.path.rstrip("/") or "/"
        try:
            who = authenticate(srv.store, self.connection.getpeercert(), self.headers.get("Authorization"))
            if who is None:
                return self._send(401, status_obj(401, "Unauthorized", "Unauthorized"))
            if path in ("/livez", "/readyz", "/healthz") or path.startswith(("/livez/", "/readyz/")):
                ok = srv.etcd_ok()
                return self._send(200 if ok else 500, b"ok" if ok else b"[-]etcd failed: reason withheld\n",
                                  "text/plain")
            if path == "/version":
                v = srv.version
                return self._send(200, {"major": str(v.major), "minor": str(v.minor), "gitVersion": f"v{v}",
                                        "platform": "linux/amd64"})
            parsed = parse_path(path)
            if path in ("/api", "/apis") or (parsed and not parsed[3]):
                if not allowed(srv.store, who, "get", "", "", "", "", path):
                    return self._forbidden(who, "get", "", "", "")
                return self._send(200, self._discovery(path, parsed))
            if parsed is None:
                return self._send(404, status_obj(404, "NotFound", "the server could not find the requested "
                                                                    "resource"))
            self._resource(method, who, parsed, query)
        except StoreError as e:
            self._send(e.code, status_obj(e.code, e.reason, str(e)))
        except (etcdgw.EtcdError, etcdgw.EtcdUnreachable) as e:
            self._send(500, status_obj(500, "InternalError", f"etcdserver: {e}"))
        except (ValueError, yaml.YAMLError) as e:
            self._send(400, status_obj(400, "BadRequest", str(e)))

    def _forbidden(self, who, verb, group, resource, ns):
        where = f" in the namespace \"{ns}\"" if ns else " at the cluster scope"
        msg = (f"{resource} is forbidden: User \"{who.user}\" cannot {verb} resource \"{resource}\" in API group "
               f"\"{group}\"{where}")
        self._send(403, status_obj(403, "Forbidden", msg))

    def _discovery(self, path, parsed):
        store = self.server.app.store
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"]}
        if path == "/apis":
            groups = [{"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in sorted(vs)],
                       "preferredVersion": {"groupVersion": f"{g}/{sorted(vs)[-1]}", "version": sorted(vs)[-1]}}
                      for g, vs in sorted(store.groups().items()) if g]
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        group, version = parsed[0], parsed[1]
        res = store.resources(group, version)
        if not res:
            raise StoreError(404, "NotFound", "the server could not find the requested resource")
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": [{"name": r, "singularName": k.lower(), "namespaced": nsd, "kind": k,
                               "verbs": ["create", "delete", "get", "list", "patch", "update"]}
                              for r, (k, nsd) in sorted(res.items())]}

    def _resource(self, method, who, parsed, query):
        app = self.server.app
        store = app.store
        group, version, ns, resource, name, sub = parsed
        res = store.resources(group, version)
        if resource not in res:
            raise StoreError(404, "NotFound", "the server could not find the requested resource")
        kind, namespaced = res[resource]
        if (ns and not namespaced) or (namespaced and not ns and method == "POST"):
            raise StoreError(404, "NotFound", "the server could not find the requested resource")
        verb = VERBS[method] if name or method != "GET" else "list"
        if not allowed(store, who, verb, group, resource, ns, name, self.path):
            return self._forbidden(who, verb, group, resource, ns)
        api_version = f"{group}/{version}" if group else version
        if resource == "secrets" and ns == "kube-system" and method == "GET":
            ctl.clean_expired_tokens(store)

        if method == "GET" and not name:
            items = store.list(group, resource, ns)
            sel = query.get("labelSelector")
            if sel:
                want = dict(p.split("=", 1) for p in sel.split(",") if "=" in p)
                items = [i for i in items if all((i["metadata"].get("labels") or {}).get(k) == v
                                                 for k, v in want.items())]
            return self._send(200, {"kind": f"{kind}List", "apiVersion": api_version, "metadata": {},
                                    "items": items})
        if method == "GET":
            obj = store.get(group, resource, ns, name)
            if resource == "configmaps" and ns == "kube-public" and name == "cluster-info":
                obj = ctl.sign_cluster_info(store, obj)
            return self._send(200, obj)
        if method == "DELETE":
            obj = store.delete(group, resource, ns, name)
            return self._send(200, obj)

        body = self._body() or {}
        if method == "POST":
            obj = self._prepare(body, kind, api_version, resource, who)
            return self._send(201, store.put(group, resource, ns, obj, create=True))
        ctype = self.headers.get("Content-Type", "")
        if method == "PATCH" and "apply-patch" not in ctype:
            current = store.get(group, resource, ns, name)
            obj = merge(current, body)
        elif method == "PATCH":  # server-side apply: create, or apply the fields over the object
            try:
                obj = merge(store.get(group, resource, ns, name), body)
            except StoreError:
                obj = body
        else:
            obj = body
        obj.setdefault("metadata", {})["name"] = name
        obj = self._prepare(obj, kind, api_version, resource, who)
        created = method == "PATCH" and "apply-patch" in ctype and not store.exists(group, resource, ns, name)
        return self._send(201 if created else 200, store.put(group, resource, ns, obj, create=False))

    def _prepare(self, obj, kind, api_version, resource, who):
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", kind)
        if resource == "secrets" and obj.get("stringData"):
            import base64  # noqa: PLC0415
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        if resource == "customresourcedefinitions":
            names = obj.get("spec", {}).get("names", {})
            obj["status"] = {"acceptedNames": names, "storedVersions": [
                v["name"] for v in obj.get("spec", {}).get("versions", []) if v.get("storage")],
                "conditions": [{"type": t, "status": "True", "reason": r, "lastTransitionTime": now(),
                                "message": m} for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"))]}
        if resource == "certificatesigningrequests" and "status" not in obj:
            obj["spec"]["username"] = who.user
            obj["spec"]["groups"] = who.groups
            obj = ctl.approve_and_sign(self.server.app.store, obj, who, self.server.app.client_ca)
        return obj


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET

    def __init__(self, addr, ctx, app):
        self.ctx, self.app = ctx, app
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class App:
    def __init__(self, args):
        etcd_servers = args.etcd_servers.split(",")
        self.etcd = etcdgw.Etcd(etcd_servers, args.etcd_cafile, args.etcd_certfile, args.etcd_keyfile, timeout=3)
        self.store = Store(self.etcd)
        self.client_ca = args.client_ca_file
        self.version = kv.own_version()
        self._ok_until = 0.0
        self._lock = threading.Lock()

    def etcd_ok(self):
        with self._lock:
            if time.monotonic() < self._ok_until:
                return True
        try:
            self.etcd.get("/registry/health")
        except (etcdgw.EtcdError, etcdgw.EtcdUnreachable):
            return False
        with self._lock:
            self._ok_until = time.monotonic() + 2
        return True


def main(argv):
    p = argparse.ArgumentParser(prog="kube-apiserver")
    for flag in ("advertise-address", "secure-port", "etcd-servers", "etcd-cafile", "etcd-certfile", "etcd-keyfile",
                 "client-ca-file", "tls-cert-file", "tls-private-key-file", "bind-address"):
        p.add_argument(f"--{flag}")
    args, _ignored = p.parse_known_args(argv)
    app = App(args)
    # Like kube-apiserver, do not serve before the storage answers; exit and
    # let the kubelet restart us if it never does.
    deadline = time.monotonic() + 60
    while not app.etcd_ok():
        if time.monotonic() > deadline:
            print("Error: context deadline exceeded: cannot reach etcd at " + args.etcd_servers, file=sys.stderr)
            return 1
        time.sleep(1)
    app.store.ensure_default_namespaces()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert_file, args.tls_private_key_file)
    ctx.load_verify_locations(args.client_ca_file)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    server = TLSServer((args.bind_address or "0.0.0.0", int(args.secure_port or 6443)), ctx, app)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"kube-apiserver stand-in v{app.version} serving on :{args.secure_port}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0
