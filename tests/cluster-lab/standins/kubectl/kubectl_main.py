"""kubectl stand-in: what bootherd's role scripts and the lab use.

  kubectl [--kubeconfig F] apply [--server-side] [--force-conflicts] -f FILE|URL|-
  kubectl wait --for=condition=NAME [--timeout=30s] TYPE/NAME...
  kubectl get TYPE [NAME] [-n NS|-A] [-o json|yaml|name|wide]
  kubectl delete TYPE NAME [-n NS]
  kubectl version [--client] [-o json]

Kinds are resolved through the API server's discovery, as kubectl does
("no matches for kind ... ensure CRDs are installed first" otherwise).
Client-side apply stores kubectl.kubernetes.io/last-applied-configuration
like the real one (so objects over 256 KiB fail as they do for real);
server-side apply sends application/apply-patch+yaml with fieldManager
kubectl. URLs are fetched with urllib. Not modelled: three-way merge
(client-side apply sends the whole object as a merge patch), pruning,
JSONPath output, watch-based waits (wait polls every second)."""

import argparse
import json
import os
import sys
import time
import urllib.request

import yaml

import apiclient
import k8s_versions as kv
import kubeconfig

SHORT = {"no": "nodes", "node": "nodes", "po": "pods", "pod": "pods", "cm": "configmaps", "configmap": "configmaps",
         "ns": "namespaces", "namespace": "namespaces", "crd": "customresourcedefinitions",
         "crds": "customresourcedefinitions", "customresourcedefinition": "customresourcedefinitions",
         "secret": "secrets", "deploy": "deployments", "deployment": "deployments", "ds": "daemonsets",
         "daemonset": "daemonsets", "sa": "serviceaccounts", "svc": "services", "service": "services",
         "csr": "certificatesigningrequests"}


class Kubectl:
    def __init__(self, client):
        self.client = client
        self._resources = {}

    def group_versions(self):
        gvs = ["v1"]
        for g in self.client.get("/apis").get("groups", []):
            gvs += [v["groupVersion"] for v in g["versions"]]
        return gvs

    def resources(self, gv):
        if gv not in self._resources:
            path = "/api/v1" if gv == "v1" else f"/apis/{gv}"
            status, body = self.client.request("GET", path)
            self._resources[gv] = body.get("resources", []) if status == 200 else []
        return self._resources[gv]

    def by_kind(self, api_version, kind):
        for r in self.resources(api_version):
            if r["kind"] == kind:
                return r
        return None

    def by_name(self, name):
        """(groupVersion, resource) for a type name as typed on the command line."""
        name = SHORT.get(name.lower(), name.lower())
        plural, _, group = name.partition(".")
        self._resources.clear()
        for gv in self.group_versions():
            if group and not gv.startswith(group + "/"):
                continue
            for r in self.resources(gv):
                if plural in (r["name"], r["singularName"], r["kind"].lower()):
                    return gv, r
        raise LookupError(f"error: the server doesn't have a resource type \"{name}\"")

    @staticmethod
    def path(gv, r, ns, name=""):
        base = "/api/v1" if gv == "v1" else f"/apis/{gv}"
        nsp = f"/namespaces/{ns}" if r["namespaced"] and ns else ""
        return f"{base}{nsp}/{r['name']}" + (f"/{name}" if name else "")


def _display(gv, r, name):
    group = gv.split("/")[0] if "/" in gv else ""
    return f"{r['singularName']}{'.' + group if group else ''}/{name}"


def read_source(src):
    if src == "-":
        return sys.stdin.read()
    if src.startswith(("http://", "https://")):
        with urllib.request.urlopen(src, timeout=60) as resp:
            return resp.read().decode()
    with open(src, encoding="utf-8") as f:
        return f.read()


def cmd_apply(k, args):
    failed = False
    for src in args.filename:
        try:
            docs = [d for d in yaml.safe_load_all(read_source(src)) if d]
        except (OSError, yaml.YAMLError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        for doc in docs:
            items = doc.get("items", []) if doc.get("kind", "").endswith("List") else [doc]
            for obj in items:
                failed |= not _apply_one(k, obj, src, args.server_side, args.force_conflicts)
    return 1 if failed else 0


def _apply_one(k, obj, src, server_side, force):
    gv, kind, name = obj.get("apiVersion"), obj.get("kind"), obj["metadata"]["name"]
    r = k.by_kind(gv, kind)
    if r is None:
        print(f"error: resource mapping not found for name: \"{name}\" namespace: "
              f"\"{obj['metadata'].get('namespace', '')}\" from \"{src}\": no matches for kind \"{kind}\" in version "
              f"\"{gv}\"\nensure CRDs are installed first", file=sys.stderr)
        return False
    ns = obj["metadata"].get("namespace") or ("default" if r["namespaced"] else "")
    path = k.path(gv, r, ns, name)
    if server_side:
        q = "?fieldManager=kubectl" + ("&force=true" if force else "")
        status, body = k.client.request("PATCH", path + q, obj, "application/apply-patch+yaml")
        verb = "serverside-applied"
    else:
        obj = json.loads(json.dumps(obj))
        ann = obj["metadata"].setdefault("annotations", {})
        ann["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(obj, separators=(",", ":")) + "\n"
        status, body = k.client.request("GET", path)
        if status == 404:
            status, body = k.client.request("POST", k.path(gv, r, ns), obj)
            verb = "created"
        else:
            status, body = k.client.request("PATCH", path, obj, "application/merge-patch+json")
            verb = "configured"
    if status >= 300:
        print(f"Error from server ({body.get('reason', status)}): error when {'creating' if verb == 'created' else 'applying patch'} "
              f"\"{src}\": {body.get('message', body)}", file=sys.stderr)
        return False
    print(f"{_display(gv, r, name)} {verb}")
    return True


def cmd_wait(k, args):
    cond = args.for_.split("=", 1)
    if cond[0] != "condition" or len(cond) != 2:
        print(f"error: unrecognized condition: \"{args.for_}\"", file=sys.stderr)
        return 1
    want, _, want_status = cond[1].partition("=")
    want_status = want_status or "True"
    timeout = _seconds(args.timeout)
    rc = 0
    for target in args.targets:
        typ, _, name = target.partition("/")
        try:
            gv, r = k.by_name(typ)
        except LookupError as e:
            print(e, file=sys.stderr)
            return 1
        deadline = time.monotonic() + timeout
        while True:
            status, obj = k.client.request("GET", k.path(gv, r, args.namespace or "default", name))
            if status == 404:
                print(f"Error from server (NotFound): {r['name']}.{gv.split('/')[0]} \"{name}\" not found",
                      file=sys.stderr)
                return 1
            conds = (obj.get("status") or {}).get("conditions") or []
            if any(c.get("type", "").lower() == want.lower() and c.get("status") == want_status for c in conds):
                print(f"{_display(gv, r, name)} condition met")
                break
            if time.monotonic() >= deadline:
                print(f"error: timed out waiting for the condition on {r['name']}/{name}", file=sys.stderr)
                rc = 1
                break
            time.sleep(1)
    return rc


def _seconds(text):
    total = 0.0
    num = ""
    for ch in text:
        if ch.isdigit() or ch == ".":
            num += ch
        else:
            total += float(num or 0) * {"h": 3600, "m": 60, "s": 1}[ch]
            num = ""
    return total + float(num or 0)


def _node_row(n):
    ready = next((c["status"] for c in n.get("status", {}).get("conditions", []) if c["type"] == "Ready"), "Unknown")
    roles = ",".join(sorted(k.split("/", 1)[1] for k in (n["metadata"].get("labels") or {})
                            if k.startswith("node-role.kubernetes.io/"))) or "<none>"
    status = {"True": "Ready", "False": "NotReady"}.get(ready, "Unknown")
    version = n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
    return [n["metadata"]["name"], status, roles, "1m", version]


def cmd_get(k, args):
    try:
        gv, r = k.by_name(args.type)
    except LookupError as e:
        print(e, file=sys.stderr)
        return 1
    ns = "" if args.all_namespaces else (args.namespace or "default")
    status, body = k.client.request("GET", k.path(gv, r, ns, args.name or ""))
    if status >= 300:
        print(f"Error from server ({body.get('reason')}): {body.get('message')}", file=sys.stderr)
        return 1
    items = [body] if args.name else body.get("items", [])
    if args.output == "json":
        print(json.dumps(body, indent=4))
    elif args.output == "yaml":
        print(yaml.safe_dump(body, sort_keys=False))
    elif args.output == "name":
        for i in items:
            print(_display(gv, r, i["metadata"]["name"]))
    else:
        if r["name"] == "nodes":
            rows = [["NAME", "STATUS", "ROLES", "AGE", "VERSION"]] + [_node_row(n) for n in items]
        else:
            rows = [["NAME"]] + [[i["metadata"]["name"]] for i in items]
        if not items:
            print(f"No resources found{' in ' + ns + ' namespace' if ns and r['namespaced'] else ''}.",
                  file=sys.stderr)
            return 0
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def cmd_delete(k, args):
    try:
        gv, r = k.by_name(args.type)
    except LookupError as e:
        print(e, file=sys.stderr)
        return 1
    status, body = k.client.request("DELETE", k.path(gv, r, args.namespace or "default", args.name))
    if status >= 300:
        print(f"Error from server ({body.get('reason')}): {body.get('message')}", file=sys.stderr)
        return 1
    print(f"{_display(gv, r, args.name).split('/')[0]} \"{args.name}\" deleted")
    return 0


def main(argv):
    p = argparse.ArgumentParser(prog="kubectl")
    p.add_argument("--kubeconfig")
    p.add_argument("-n", "--namespace")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("apply")
    a.add_argument("-f", "--filename", action="append", required=True)
    a.add_argument("--server-side", action="store_true")
    a.add_argument("--force-conflicts", action="store_true")
    w = sub.add_parser("wait")
    w.add_argument("--for", dest="for_", required=True)
    w.add_argument("--timeout", default="30s")
    w.add_argument("targets", nargs="+")
    g = sub.add_parser("get")
    g.add_argument("type")
    g.add_argument("name", nargs="?")
    g.add_argument("-o", "--output", default="")
    g.add_argument("-A", "--all-namespaces", action="store_true")
    d = sub.add_parser("delete")
    d.add_argument("type")
    d.add_argument("name")
    v = sub.add_parser("version")
    v.add_argument("--client", action="store_true")
    v.add_argument("-o", "--output", default="")
    for sp in (a, w, g, d, v):
        sp.add_argument("-n", "--namespace", dest="namespace", default=argparse.SUPPRESS)
        sp.add_argument("--kubeconfig", dest="kubeconfig", default=argparse.SUPPRESS)
    args = p.parse_args(argv)
    version = kv.own_version()
    path = args.kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if args.cmd == "version" and args.client:
        print(json.dumps({"clientVersion": {"gitVersion": f"v{version}"}}) if args.output == "json"
              else f"Client Version: v{version}")
        return 0
    try:
        client = apiclient.Client.from_kubeconfig(kubeconfig.load(path), timeout=30)
    except OSError as e:
        print(f"error: error loading config file \"{path}\": {e}", file=sys.stderr)
        return 1
    k = Kubectl(client)
    try:
        if args.cmd == "version":
            server = client.get("/version")
            if args.output == "json":
                print(json.dumps({"clientVersion": {"gitVersion": f"v{version}"}, "serverVersion": server}))
            else:
                print(f"Client Version: v{version}\nServer Version: {server['gitVersion']}")
            return 0
        return {"apply": cmd_apply, "wait": cmd_wait, "get": cmd_get, "delete": cmd_delete}[args.cmd](k, args)
    except apiclient.Unreachable as e:
        print(f"The connection to the server {client.server} was refused - did you specify the right host or port? "
              f"({e})", file=sys.stderr)
        return 1
    except apiclient.APIError as e:
        print(f"Error from server ({e.reason}): {e.body.get('message', e)}", file=sys.stderr)
        return 1
